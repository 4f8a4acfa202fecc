/**
 * Who a Mercure request comes from and what it may do, as the handler needs it: the grant of a
 * valid token, or the RFC 6750 answer that refuses it. Tokens, keys and claims are read by
 * ./auth/; this joins them to the handler's options (one verifier per role, or none when that
 * role has no key).
 */
import type { Logger } from '../../logger.js';
import type { SseRequest } from '../../stream.js';
import type { Answer } from './answer.js';
import { authenticate, authRefusal, tokenVerifier, type AuthLogger, type Grant, type KeyLike, type TokenVerifier } from './auth/index.js';

export type MercureGrant = Grant;

export type Identity = { ok: true; grant: Grant | undefined } | { ok: false; answer: Answer };

export interface MercureAuth {
  /** Whether publishers can be verified at all (a key or a JWK Set is configured). */
  readonly publishing: boolean;
  /** Whether subscribers' tokens are verified (then tokenless ones need `anonymous`). */
  readonly subscriberTokensRequired: boolean;
  /** No token: no grant. A token when no subscriber key is configured: ignored (anonymous). */
  subscriber(request: SseRequest): Promise<Identity>;
  /** A token is required. */
  publisher(request: SseRequest): Promise<Identity>;
  missingToken(): Answer;
  insufficientScope(message: string): Answer;
}

/** The keys that publishers' and subscribers' tokens are checked with, and what draft-08 tokens must name. */
export interface MercureKeyOptions {
  /** Key of publishers' tokens: a secret (HS256 by default), a PEM public key or certificate, or a key object. Without it (and without `publisherJwksUrl`), publishing is refused. */
  publisherKey?: string | KeyLike;
  /** The algorithm of publishers' tokens. Default: HS256 for a secret; for a PEM key, RS256. */
  publisherAlg?: string;
  /** A JWK Set URL for publishers' keys, instead of a key. */
  publisherJwksUrl?: string;
  /** Key of subscribers' tokens. Without it, subscribing is anonymous: public updates only. */
  subscriberKey?: string | KeyLike;
  subscriberAlg?: string;
  subscriberJwksUrl?: string;
  /** Draft-08 (`at+jwt`) tokens must have been issued by this `iss`. */
  jwtIssuer?: string;
  /**
   * Draft-08 (`at+jwt`) tokens must name this audience (the hub's resource identifier) in `aud`.
   * Default: the handler's `url`, when one is given; without either, at+jwt tokens are refused.
   */
  jwtAudience?: string;
}

export interface AuthOptions extends MercureKeyOptions {
  /** The URL of the hub's RFC 9728 metadata, named in every 401 challenge (draft-08 SHOULD). */
  resourceMetadata?: string;
  /** Against which relative selectors in claims resolve: the hub's URL. */
  base: string;
  logger: Logger;
}

/** @throws TypeError naming the option, for a key or algorithm that cannot work */
export function createMercureAuth(options: AuthOptions): MercureAuth {
  const log: AuthLogger = (level, message, details) => options.logger[level](details ?? {}, `serve-sse: ${message}`);
  const verifier = (role: 'publisher' | 'subscriber', key: string | KeyLike | undefined, alg: string | undefined, jwksUrl: string | undefined): TokenVerifier | undefined =>
    key === undefined && jwksUrl === undefined
      ? undefined
      : tokenVerifier(role, { key, alg, jwksUrl, audience: options.jwtAudience, issuer: options.jwtIssuer, base: options.base, logger: log });
  const publisher = verifier('publisher', options.publisherKey, options.publisherAlg, options.publisherJwksUrl);
  const subscriber = verifier('subscriber', options.subscriberKey, options.subscriberAlg, options.subscriberJwksUrl);

  const { resourceMetadata } = options;
  return {
    publishing: publisher !== undefined,
    subscriberTokensRequired: subscriber !== undefined,
    subscriber: (request) => (subscriber === undefined ? Promise.resolve({ ok: true, grant: undefined }) : authenticate(request, subscriber, { required: false, resourceMetadata })),
    publisher: (request) => (publisher === undefined ? Promise.resolve({ ok: true, grant: undefined }) : authenticate(request, publisher, { required: true, resourceMetadata })),
    missingToken: () => authRefusal('missing', { resourceMetadata }),
    insufficientScope: (message) => authRefusal('insufficient_scope', { message, resourceMetadata }),
  };
}
