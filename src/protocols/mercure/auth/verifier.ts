/**
 * Verifying a Mercure access token, for one role (publisher or subscriber): the signature with
 * the role's key and allowlist, then the claims of the token's dialect.
 *
 * - A token whose header `typ` is `at+jwt` (RFC 9068) speaks draft-08: `exp` is required, `nbf`
 *   honoured, `aud` must hold the hub's resource identifier (without one configured, such tokens
 *   are refused: the hub MUST know it), `iss` must be the configured issuer when there is one.
 * - Any other token speaks draft-07: `exp` and `nbf` honoured when present, and `aud` too when
 *   both the token has one and the hub knows its identifier (RFC 7519 §4.1.3).
 *
 * Valid verdicts are cached until the token's `exp` (see {@link TokenCache}); concurrent checks of
 * one token share one signature check. A failure says nothing of its cause to the client (one
 * `invalid_token` answer for all); the cause goes to the logger at `debug`.
 */
import { decodeProtectedHeader, jwtVerify, type JWTVerifyOptions } from 'jose';
import type { SseRequest } from '../../../stream.js';
import { TokenCache } from '../../jwt/cache.js';
import { ClaimsError, draft07Claims, draft08Claims, type AuthDialect, type Grant, type GrantClaims } from './claims.js';
import { authRefusal, type AuthAnswer, type AuthLogger, type RefusalOptions } from './errors.js';
import { defaultOptionNames, importPlanned, planKey, type KeyOptions, type OptionNames, type ResolvedKey, type Role } from '../../jwt/keys.js';
import { extractToken, MAX_TOKEN_LENGTH, type ExtractOptions, type TokenVia } from './tokens.js';

export interface VerifierOptions extends KeyOptions {
  /** The hub's resource identifier (draft-08 `aud`; `--jwt-audience`). Without it, `at+jwt` tokens are refused. */
  audience?: string | readonly string[];
  /** The issuer draft-08 tokens must name in `iss` (`--jwt-issuer`); unchecked when absent. */
  issuer?: string | readonly string[];
  /**
   * The hub's URL, against which relative URL patterns in claims are resolved. Default: the
   * audience when it is an absolute URL, else `https://localhost/.well-known/mercure`.
   */
  base?: string;
  /** Seconds of clock skew allowed on `exp` and `nbf` (default 0). */
  clockTolerance?: number;
  logger?: AuthLogger;
  /** How errors name the options (default `publisherKey`, `publisherAlg`, `publisherJwksUrl`, or the subscriber's). */
  names?: Partial<OptionNames>;
  /** How the refusal of an `at+jwt` token names the audience setting (default `--jwt-audience`). */
  audienceSetting?: string;
}

export type Verdict = { ok: true; grant: Grant } | { ok: false; reason: string; hubHint?: string };

export interface TokenVerifier {
  readonly role: Role;
  /** The algorithms this verifier accepts. */
  readonly algorithms: readonly string[];
  /** Checks a presented token. Never throws. */
  verify(token: string, via: TokenVia): Promise<Verdict>;
  /** Settles when the key is imported: rejects with the TypeError of a key that cannot be (for {@link tokenVerifier}'s callers). */
  ready(): Promise<void>;
  /** Signature checks made (calls to jose), and answers given from the cache. */
  readonly stats: { readonly checks: number; readonly cacheHits: number };
}

const DEFAULT_BASE = 'https://localhost/.well-known/mercure';

type Checked = { ok: true; claims: GrantClaims; until: number } | { ok: false; reason: string; hubHint?: string };

/**
 * The verifier of one role's tokens, once its key is imported. Rejects with a TypeError naming the
 * option when the configuration is wrong (a missing or unusable key, an algorithm not allowed or
 * unfit for the key, a bad URL).
 */
export async function createTokenVerifier(role: Role, options: VerifierOptions): Promise<TokenVerifier> {
  const verifier = tokenVerifier(role, options);
  await verifier.ready();
  return verifier;
}

/**
 * The same, for a caller that cannot wait (a handler factory): the configuration is checked now,
 * and a TypeError thrown for any mistake in it; the key is imported meanwhile, and verifications
 * wait for it.
 */
export function tokenVerifier(role: Role, options: VerifierOptions): TokenVerifier {
  const names = { ...defaultOptionNames(role), ...options.names };
  const { logger } = options;
  const audience = options.audience === undefined ? undefined : list(options.audience, 'audience');
  const issuer = options.issuer === undefined ? undefined : list(options.issuer, 'issuer');
  const clockTolerance = options.clockTolerance ?? 0;
  if (!(Number.isFinite(clockTolerance) && clockTolerance >= 0)) throw new TypeError('clockTolerance must be a number of seconds, 0 or more');
  const base = options.base ?? (audience?.find((value) => URL.canParse(value)) ?? DEFAULT_BASE);
  if (!URL.canParse(base)) throw new TypeError(`base: ${JSON.stringify(base)} is not an absolute URL`);
  const plan = planKey(options, names, logger);
  const algorithms = plan.kind === 'jwks' ? plan.algorithms : [plan.alg];
  // Never rejects: a failed import is kept as its error, so that nobody has to be listening.
  const imported: Promise<ResolvedKey | TypeError> = importPlanned(plan, names, logger).catch((error: unknown) =>
    error instanceof TypeError ? error : new TypeError(`${names.key}: ${(error as Error).message}`, { cause: error }),
  );
  const audienceSetting = options.audienceSetting ?? '--jwt-audience';
  const cache = new TokenCache<GrantClaims>();
  const inflight = new Map<string, Promise<Checked>>();
  const stats = { checks: 0, cacheHits: 0 };
  let warnedAudience = false;

  const common: JWTVerifyOptions = { algorithms: [...algorithms], clockTolerance };
  const draft08Options: JWTVerifyOptions = {
    ...common,
    typ: 'at+jwt',
    requiredClaims: ['exp'],
    ...(audience === undefined ? {} : { audience }),
    ...(issuer === undefined ? {} : { issuer }),
  };

  async function check(token: string): Promise<Checked> {
    const resolved = await imported;
    if (resolved instanceof TypeError) {
      logger?.('warn', `${role} token refused: the key could not be imported (${resolved.message})`);
      return { ok: false, reason: `no usable key: ${resolved.message}` };
    }
    if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: `longer than ${MAX_TOKEN_LENGTH} characters` };
    let dialect: AuthDialect;
    try {
      const { typ } = decodeProtectedHeader(token);
      dialect = typeof typ === 'string' && normalizeTyp(typ) === 'application/at+jwt' ? 'draft-08' : 'draft-07';
    } catch {
      return { ok: false, reason: 'not a JWS in compact serialization' };
    }
    if (dialect === 'draft-08' && audience === undefined) {
      const reason = `an at+jwt (draft-08) token, but the hub's resource identifier is not configured: set ${audienceSetting}`;
      if (!warnedAudience) logger?.('warn', `${role} tokens of type at+jwt are refused until ${audienceSetting} is set`);
      warnedAudience = true;
      return { ok: false, reason, hubHint: `this hub takes no at+jwt tokens until its resource identifier is configured (${audienceSetting})` };
    }
    let payload: Record<string, unknown>;
    stats.checks += 1;
    const checkedAt = Date.now();
    try {
      ({ payload } = await jwtVerify(token, resolved.key as Parameters<typeof jwtVerify>[1], dialect === 'draft-08' ? draft08Options : common));
    } catch (error) {
      const why = reason(error);
      if (resolved.jwks && isFetchFailure(error)) logger?.('warn', `${role} token refused: the JWK Set could not be fetched (${(error as Error).message})`);
      return { ok: false, reason: why };
    }
    // RFC 7519 §4.1.3: an `aud` that does not name the hub is a refusal, in draft-07 tokens too
    // (which need none): when the hub knows its identifier, it can tell.
    if (dialect === 'draft-07' && payload.aud !== undefined && audience !== undefined && !namesAudience(payload.aud, audience)) {
      return { ok: false, reason: 'claim check failed: aud (it does not name this hub)' };
    }
    let claims: GrantClaims;
    try {
      claims = dialect === 'draft-08' ? draft08Claims(payload, { base }) : draft07Claims(payload, { base });
    } catch (error) {
      if (error instanceof ClaimsError) return { ok: false, reason: `unusable claims: ${error.message}` };
      throw error;
    }
    const expiry = claims.exp === undefined ? Infinity : (claims.exp + clockTolerance) * 1000;
    return { ok: true, claims, until: Math.min(expiry, checkedAt + resolved.cacheMaxAge) };
  }

  return {
    role,
    algorithms,
    stats,
    async ready() {
      const resolved = await imported;
      if (resolved instanceof TypeError) throw resolved;
    },
    async verify(token, via) {
      const known = cache.get(token);
      if (known !== undefined) {
        stats.cacheHits += 1;
        return { ok: true, grant: { ...known, via } };
      }
      let pending = inflight.get(token);
      if (pending === undefined) {
        pending = check(token).catch((error: unknown): Checked => ({ ok: false, reason: `verification failed: ${(error as Error).message}` }));
        inflight.set(token, pending);
        void pending.then((checked) => {
          inflight.delete(token);
          if (checked.ok) cache.set(token, checked.claims, checked.until);
        });
      }
      const checked = await pending;
      if (!checked.ok) {
        logger?.('debug', `${role} token refused: ${checked.reason}`, { via });
        return checked.hubHint === undefined ? { ok: false, reason: checked.reason } : { ok: false, reason: checked.reason, hubHint: checked.hubHint };
      }
      return { ok: true, grant: { ...checked.claims, via } };
    },
  };
}

function namesAudience(aud: unknown, audience: readonly string[]): boolean {
  if (typeof aud === 'string') return audience.includes(aud);
  return Array.isArray(aud) && aud.some((item) => typeof item === 'string' && audience.includes(item));
}

function list(value: string | readonly string[], name: string): string[] {
  const values = typeof value === 'string' ? [value] : [...value];
  if (values.length === 0 || values.some((item) => typeof item !== 'string' || item === '')) throw new TypeError(`${name} must be a non-empty string or array of strings`);
  return values;
}

/** RFC 7515 §4.1.9: `typ` is a media type, its `application/` prefix optional, compared without case. */
function normalizeTyp(typ: string): string {
  const lower = typ.toLowerCase();
  return lower.includes('/') ? lower : `application/${lower}`;
}

function isFetchFailure(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JWKS_INVALID' || code === 'ERR_JOSE_GENERIC' || error instanceof TypeError;
}

/** Why jose refused a token, for the log: never the token itself. */
function reason(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'it has expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `claim check failed: ${(error as { claim?: string }).claim ?? '?'} (${(error as Error).message})`;
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'its algorithm is not allowed';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'its signature does not match the key';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no key of the JWK Set matches it';
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'several keys of the JWK Set match it and none verifies it';
    default:
      return `${typeof code === 'string' ? code : 'invalid'}: ${(error as Error).message}`;
  }
}

export interface AuthenticateOptions extends ExtractOptions, Pick<RefusalOptions, 'realm' | 'resourceMetadata'> {
  /** Whether the operation needs a token: without one, a request gets 401 when true, and no grant when false. */
  required: boolean;
}

export type Authentication = { ok: true; grant: Grant | undefined } | { ok: false; answer: AuthAnswer };

/**
 * Who a request comes from: its token extracted and verified. A malformed presentation answers
 * 400 `invalid_request`; a token that fails answers 401 `invalid_token` whether or not one was
 * required (a subscriber allowed in anonymously does not become anonymous by sending a bad
 * token); no token answers 401 only when one is required.
 */
export async function authenticate(request: SseRequest, verifier: TokenVerifier, options: AuthenticateOptions): Promise<Authentication> {
  const refusal = { realm: options.realm, resourceMetadata: options.resourceMetadata };
  const presented = extractToken(request, options);
  if (presented === undefined) return options.required ? { ok: false, answer: authRefusal('missing', refusal) } : { ok: true, grant: undefined };
  if (presented.token === undefined) return { ok: false, answer: authRefusal('invalid_request', { ...refusal, message: presented.problem }) };
  const verdict = await verifier.verify(presented.token, presented.via);
  if (verdict.ok) return { ok: true, grant: verdict.grant };
  return { ok: false, answer: authRefusal('invalid_token', { ...refusal, hubHint: verdict.hubHint }) };
}
