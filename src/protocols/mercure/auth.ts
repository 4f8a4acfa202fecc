/**
 * Who a Mercure request comes from and what it may do, as the handler needs it: the grant of a
 * valid token (its publish and subscribe selectors, payloads, expiry, subject), or the RFC 6750
 * answer that refuses it. Tokens, keys and claims are read by ./auth/; this joins them to the
 * handler's options.
 *
 * PROVISIONAL: HS256 keys and the claims of both dialects, until ./auth/ (keys of every kind,
 * JWK Sets, caching) is wired in.
 */
import { jwtVerify, decodeProtectedHeader, type JWTPayload } from 'jose';
import type { Logger } from '../../logger.js';
import { requestHeader } from '../../request-header.js';
import type { SseRequest } from '../../stream.js';
import { text, type Answer } from './answer.js';
import { compileSelector, MatcherError, type MatcherKind, type Selector } from './matchers.js';
import { decodeQuery } from './subscribe-request.js';

export interface MercureGrant {
  readonly dialect: 'draft-07' | 'draft-08';
  readonly publish: readonly Selector[];
  readonly subscribe: readonly Selector[];
  /** What the API and subscription events show of a subscription with this selector source. */
  payloadFor(source: string): unknown;
  /** Seconds since the epoch. */
  readonly exp: number | undefined;
  readonly sub: string | undefined;
  readonly via: 'header' | 'query' | 'cookie';
}

export type Identity = { ok: true; grant: MercureGrant | undefined } | { ok: false; answer: Answer };

export interface MercureAuth {
  /** Whether publishers can be verified at all (a key is configured). */
  readonly publishing: boolean;
  /** Whether subscribers' tokens can be verified (then tokenless ones need `anonymous`). */
  readonly subscriberTokensRequired: boolean;
  subscriber(request: SseRequest): Promise<Identity>;
  publisher(request: SseRequest): Promise<Identity>;
  missingToken(): Answer;
  insufficientScope(message: string): Answer;
}

export interface AuthOptions {
  publisherKey?: string;
  subscriberKey?: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  /** Against which relative selectors resolve. */
  base: string;
  logger: Logger;
}

const COOKIES = ['mercureAuthorization', '__Secure-mercure_access_token', 'mercureAccessToken'];

export function createMercureAuth(options: AuthOptions): MercureAuth {
  const publisherKey = options.publisherKey === undefined ? undefined : new TextEncoder().encode(options.publisherKey);
  const subscriberKey = options.subscriberKey === undefined ? undefined : new TextEncoder().encode(options.subscriberKey);

  async function identify(request: SseRequest, key: Uint8Array | undefined): Promise<Identity> {
    const found = tokenOf(request);
    if (found === undefined || key === undefined) return { ok: true, grant: undefined };
    try {
      const header = decodeProtectedHeader(found.token);
      const atJwt = header.typ?.toLowerCase() === 'at+jwt' || header.typ?.toLowerCase() === 'application/at+jwt';
      if (atJwt && options.jwtAudience === undefined) throw new Error('draft-08 tokens need the hub to know its audience (--jwt-audience)');
      const { payload } = await jwtVerify(found.token, key, {
        algorithms: ['HS256'],
        ...(atJwt ? { audience: options.jwtAudience, requiredClaims: ['exp'], ...(options.jwtIssuer === undefined ? {} : { issuer: options.jwtIssuer }) } : {}),
      });
      return { ok: true, grant: atJwt ? draft08(payload, found.via, options.base) : draft07(payload, found.via, options.base) };
    } catch (error) {
      options.logger.debug({ err: error }, 'serve-sse: a Mercure token was refused');
      return { ok: false, answer: text(401, 'the token is not valid', { 'www-authenticate': 'Bearer error="invalid_token"' }) };
    }
  }

  return {
    publishing: publisherKey !== undefined,
    subscriberTokensRequired: subscriberKey !== undefined,
    subscriber: (request) => identify(request, subscriberKey),
    publisher: (request) => identify(request, publisherKey),
    missingToken: () => text(401, 'a token is needed: Authorization: Bearer <token>, or the mercureAuthorization cookie', { 'www-authenticate': 'Bearer' }),
    insufficientScope: (message) => text(403, message, { 'www-authenticate': 'Bearer error="insufficient_scope"' }),
  };
}

function tokenOf(request: SseRequest): { token: string; via: MercureGrant['via'] } | undefined {
  const authorization = requestHeader(request, 'authorization');
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match === null ? { token: '', via: 'header' } : { token: match[1]!, via: 'header' };
  }
  const url = request.url ?? '';
  const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
  const params = decodeQuery(query);
  if (typeof params !== 'string') {
    const fromQuery = params.find(([name]) => name === 'authorization' || name === 'access_token');
    if (fromQuery !== undefined) return { token: fromQuery[1], via: 'query' };
  }
  const cookie = requestHeader(request, 'cookie');
  if (cookie !== undefined) {
    for (const part of cookie.split(';')) {
      const [name = '', ...rest] = part.trim().split('=');
      if (COOKIES.includes(name)) return { token: rest.join('='), via: 'cookie' };
    }
  }
  return undefined;
}

function selectors(kind: MatcherKind, list: unknown, base: string): Selector[] {
  if (list === undefined) return [];
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) throw new Error('selectors must be an array of strings');
  return list.map((source: string) => compileSelector(kind, source, { base }));
}

function draft07(payload: JWTPayload, via: MercureGrant['via'], base: string): MercureGrant {
  const claim = (payload as { mercure?: { publish?: unknown; subscribe?: unknown; payload?: unknown } }).mercure ?? {};
  return {
    dialect: 'draft-07',
    publish: selectors('template', claim.publish, base),
    subscribe: selectors('template', claim.subscribe, base),
    payloadFor: () => claim.payload,
    exp: payload.exp,
    sub: typeof payload.sub === 'string' ? payload.sub : undefined,
    via,
  };
}

interface Detail {
  actions: string[];
  topics: Selector[];
  payload: unknown;
}

function draft08(payload: JWTPayload, via: MercureGrant['via'], base: string): MercureGrant {
  const details: Detail[] = [];
  const raw = (payload as { authorization_details?: unknown }).authorization_details;
  for (const item of Array.isArray(raw) ? raw : []) {
    const detail = item as { type?: unknown; actions?: unknown; topics?: unknown; payload?: unknown };
    if (detail.type !== 'mercure' && detail.type !== 'https://mercure.rocks/authorization-detail') continue;
    if (!Array.isArray(detail.actions) || !Array.isArray(detail.topics)) throw new MatcherError('a mercure authorization detail needs actions and topics');
    const topics = detail.topics.map((topic: { match?: unknown; matchType?: unknown; match_type?: unknown }) => {
      const type = String(topic.matchType ?? topic.match_type ?? 'exact').toLowerCase();
      if (typeof topic.match !== 'string' || (type !== 'exact' && type !== 'urlpattern')) throw new MatcherError('a topic matcher needs match, and matchType Exact or URLPattern');
      return compileSelector(type, topic.match, { base });
    });
    details.push({ actions: detail.actions as string[], topics, payload: detail.payload });
  }
  const forAction = (action: string): Selector[] => details.filter((detail) => detail.actions.includes(action)).flatMap((detail) => detail.topics);
  return {
    dialect: 'draft-08',
    publish: forAction('publish'),
    subscribe: forAction('subscribe'),
    payloadFor: (source) => details.find((detail) => detail.actions.includes('subscribe') && detail.topics.some((topic) => topic.matches(source)))?.payload,
    exp: payload.exp,
    sub: typeof payload.sub === 'string' ? payload.sub : undefined,
    via,
  };
}
