/**
 * Who a Mercure request comes from and what it may do: token extraction, keys and algorithms,
 * the claims of both dialects, and RFC 6750 refusals.
 */
export { extractToken, DEFAULT_COOKIE_NAMES, TOKEN_QUERY_PARAMETERS, MAX_TOKEN_LENGTH, type TokenVia, type PresentedToken, type ExtractOptions } from './tokens.js';
export { resolveKey, planKey, importPlanned, defaultOptionNames, ALGORITHMS, HMAC_ALGORITHMS, ASYMMETRIC_ALGORITHMS, JWKS_ALGORITHMS, type KeyLike, type KeyOptions, type OptionNames, type ResolvedKey, type KeyPlan, type Role } from '../../jwt/keys.js';
export {
  draft07Claims,
  draft08Claims,
  allows,
  privateAccess,
  ClaimsError,
  MAX_AUTHORIZATION_DETAILS,
  MAX_DETAIL_TOPICS,
  MAX_GRANT_SELECTORS,
  MAX_PATTERN_LENGTH,
  AUTHORIZATION_DETAIL_TYPES,
  type AuthDialect,
  type Grant,
  type GrantClaims,
  type ClaimsOptions,
} from './claims.js';
export { authRefusal, INVALID_TOKEN_BODY, type AuthAnswer, type AuthLogger, type BearerError, type RefusalKind, type RefusalOptions } from './errors.js';
export { TokenCache, TOKEN_CACHE_ENTRIES, TOKEN_CACHE_CHARS } from '../../jwt/cache.js';
export { createTokenVerifier, tokenVerifier, authenticate, type TokenVerifier, type VerifierOptions, type Verdict, type AuthenticateOptions, type Authentication } from './verifier.js';
