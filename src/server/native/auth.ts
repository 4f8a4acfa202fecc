/**
 * JWTs for the hub server's own protocol: the key and its one algorithm as configured (an HMAC
 * secret, a PEM public key, or a JWK Set: see src/protocols/jwt/keys.ts, shared with Mercure), so
 * a token cannot choose a weaker algorithm or `none`; expiry and not-before honoured by jose; and
 * the topics a token grants in its `sse.publish` / `sse.subscribe` claims (arrays of topic names,
 * `"*"` for every topic).
 */
import { jwtVerify, type JWTVerifyResult } from 'jose';
import { TokenCache } from '../../protocols/jwt/cache.js';
import { resolveKey, type AuthLogger, type KeyOptions, type OptionNames } from '../../protocols/jwt/keys.js';
import type { SseRequest } from '../../index.js';
import { requestHeader } from '../../request-header.js';
import { quote, WILDCARD } from './topics.js';

export type Action = 'publish' | 'subscribe';

/** What a valid token allows. */
export interface Grant {
  /** Topic names, `"*"` for all; empty when the token has no claim for the action. */
  readonly topics: readonly string[];
  /** Expiry, in seconds since the epoch, if the token has one. */
  readonly exp: number | undefined;
}

/** A refusal, ready to answer: status, body, and the `WWW-Authenticate` challenge. */
export interface Refusal {
  status: 401 | 403;
  message: string;
  challenge: string;
}

export type Checked = { ok: true; grant: Grant } | { ok: false; refusal: Refusal };

export const COOKIE = 'sse_token';
const REALM = 'serve-sse';

export interface TokenVerifier {
  /** Checks the token; undefined means none was sent. */
  verify(token: string | undefined): Promise<Checked>;
}

/**
 * A verifier for one action's key. The key is imported once, not per request. Valid tokens are
 * remembered until their expiry (a bounded cache): a backend publishes with the same token many
 * times, and a signature check costs far more than the rest of a publish.
 * @throws TypeError naming the option (`names`) for a key or algorithm that cannot work
 */
export async function createVerifier(keys: KeyOptions, action: Action, names: OptionNames, logger?: AuthLogger): Promise<TokenVerifier> {
  const resolved = await resolveKey(keys, names, logger);
  const algorithms = [...resolved.algorithms];
  const check = (token: string): Promise<JWTVerifyResult> =>
    typeof resolved.key === 'function' ? jwtVerify(token, resolved.key, { algorithms }) : jwtVerify(token, resolved.key, { algorithms });
  const valid = new TokenCache<Grant>();
  return {
    async verify(token) {
      if (token === undefined) return refuse(401, `a ${action === 'publish' ? 'publisher' : 'subscriber'} token is required (Authorization: Bearer <jwt>${action === 'subscribe' ? ` or the ${COOKIE} cookie` : ''})`, undefined);
      const known = valid.get(token);
      if (known !== undefined) return { ok: true, grant: known };
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await check(token));
      } catch (error) {
        return refuse(401, `invalid token: ${reason(error)}`, 'invalid_token');
      }
      const claim = (payload.sse as Record<string, unknown> | undefined)?.[action];
      if (claim !== undefined && !(Array.isArray(claim) && claim.every((item) => typeof item === 'string'))) {
        return refuse(403, `the token's sse.${action} claim must be an array of topic names`, 'insufficient_scope');
      }
      const exp = typeof payload.exp === 'number' ? payload.exp : undefined;
      const grant: Grant = { topics: claim ?? [], exp };
      // A token with a future "nbf" never gets here before its time, so what is kept was valid.
      valid.set(token, grant, Math.min(exp === undefined ? Infinity : exp * 1000, Date.now() + resolved.cacheMaxAge));
      return { ok: true, grant };
    },
  };
}

/** A 403 for the first topics the grant does not cover; undefined if it covers them all. */
export function checkTopics(grant: Grant, topics: readonly string[], action: Action): Refusal | undefined {
  if (grant.topics.includes(WILDCARD)) return undefined;
  const denied = topics.filter((topic) => !grant.topics.includes(topic));
  if (denied.length === 0) return undefined;
  const claim = grant.topics.length === 0 ? ` (the token has no sse.${action} claim)` : '';
  const shown = denied.slice(0, 5).map(quote).join(', ') + (denied.length > 5 ? `, and ${denied.length - 5} more` : '');
  return refuse(403, `the token does not allow you to ${action} to ${shown}${claim}`, 'insufficient_scope').refusal;
}

/** The token from `Authorization: Bearer ...`. */
export function bearerToken(request: SseRequest): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(requestHeader(request, 'authorization') ?? '');
  return match?.[1];
}

/** The token from the `sse_token` cookie, for browsers, whose `EventSource` cannot set headers. */
export function cookieToken(request: SseRequest): string | undefined {
  const cookies = requestHeader(request, 'cookie');
  if (cookies === undefined) return undefined;
  for (const pair of cookies.split(';')) {
    const at = pair.indexOf('=');
    if (at !== -1 && pair.slice(0, at).trim() === COOKIE) {
      const value = pair.slice(at + 1).trim();
      return value === '' ? undefined : value;
    }
  }
  return undefined;
}

function refuse(status: 401 | 403, message: string, error: string | undefined): { ok: false; refusal: Refusal } {
  const challenge = `Bearer realm="${REALM}"${error === undefined ? '' : `, error="${error}"`}`;
  return { ok: false, refusal: { status, message, challenge } };
}

/** Why jose refused a token, in words that do not echo the token back. */
function reason(error: unknown): string {
  switch ((error as { code?: unknown }).code) {
    case 'ERR_JWT_EXPIRED':
      return 'it has expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `claim check failed (${(error as Error).message})`;
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'its algorithm is not the one this hub accepts';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'its signature does not match the key';
    default:
      return 'it is not a well-formed JWT';
  }
}
