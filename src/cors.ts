/**
 * Cross-origin event streams. An `EventSource` on another origin sends `Origin` and reads the
 * stream only if the answer allows that origin; with `withCredentials` it also needs the origin
 * echoed (never `*`) and `Access-Control-Allow-Credentials: true`. Fetch-based polyfills that add
 * headers (`Authorization`) send a preflight `OPTIONS` first, which is answered here too.
 */

import { requestHeader } from './request-header.js';
import type { SseRequest } from './stream.js';

export interface CorsOptions {
  /** Origins allowed to read the stream: one, a list, a predicate, or `true` for any. */
  origin: true | string | readonly string[] | ((origin: string) => boolean);
  /** Lets cookies through (`new EventSource(url, { withCredentials: true })`). Default false. */
  credentials?: boolean;
  /** Seconds a browser may reuse a preflight answer. Default 600. */
  maxAge?: number;
}

/** What the `cors` option accepts: full options, or just the allowed origins. */
export type CorsOption = CorsOptions | true | string | readonly string[];

/** CORS resolved for a handler: what to do with one request. */
export interface Cors {
  /**
   * `undefined`: not a cross-origin request, nothing to add. Otherwise the headers to add to
   * whatever the answer is, or a complete answer (a refused origin, a preflight).
   */
  check(request: SseRequest): CorsVerdict | undefined;
}

export type CorsVerdict =
  | { kind: 'allow'; headers: Record<string, string> }
  | { kind: 'answer'; status: number; headers: Record<string, string>; body: string | undefined };

const DEFAULT_MAX_AGE = 600;

/**
 * @param methods what a preflight may ask for: `GET` for event streams; other endpoints that share
 *   the allow-list (the hub server's `POST /publish`) say their own.
 * @throws TypeError naming what is wrong with the option.
 */
export function resolveCors(option: CorsOption, methods = 'GET'): Cors {
  const options: CorsOptions =
    option === true || typeof option === 'string' || Array.isArray(option) ? { origin: option as CorsOptions['origin'] } : (option as CorsOptions);
  if (options === null || typeof options !== 'object') throw corsError('an origin, a list of origins, true, or { origin, credentials?, maxAge? }', option);
  const { origin, credentials = false, maxAge = DEFAULT_MAX_AGE } = options;
  if (typeof credentials !== 'boolean') throw corsError('credentials: a boolean', credentials);
  if (!(Number.isSafeInteger(maxAge) && maxAge >= 0)) throw corsError('maxAge: a non-negative integer (seconds)', maxAge);
  const allows = originMatcher(origin);
  // `*` is the one answer a shared cache may keep for every origin; credentials forbid it.
  const wildcard = origin === true && !credentials;

  return {
    check(request) {
      const requestOrigin = header(request, 'origin');
      if (requestOrigin === undefined) return undefined;
      const preflight = request.method === 'OPTIONS' && header(request, 'access-control-request-method') !== undefined;
      if (!allows(requestOrigin)) {
        return {
          kind: 'answer',
          status: 403,
          headers: { 'content-type': 'text/plain; charset=utf-8', vary: 'Origin' },
          body: `Origin ${requestOrigin} is not allowed to read this event stream\n`,
        };
      }
      const headers: Record<string, string> = wildcard
        ? { 'access-control-allow-origin': '*' }
        : { 'access-control-allow-origin': requestOrigin, vary: 'Origin' };
      if (credentials) headers['access-control-allow-credentials'] = 'true';
      if (!preflight) return { kind: 'allow', headers };
      headers['access-control-allow-methods'] = methods;
      const asked = header(request, 'access-control-request-headers');
      // The origin is trusted, so whatever request headers it wants (Last-Event-ID, Authorization)
      // may come; the answer echoes them, so a cache must keep one answer per list.
      if (asked !== undefined) headers['access-control-allow-headers'] = asked;
      headers.vary = headers.vary === undefined ? 'Access-Control-Request-Headers' : `${headers.vary}, Access-Control-Request-Headers`;
      headers['access-control-max-age'] = String(maxAge);
      return { kind: 'answer', status: 204, headers, body: undefined };
    },
  };
}

/**
 * The CORS headers added to an answer (lower-case names, like the answer's). The answer's own
 * headers win, except `Vary`: an app's `Vary: Cookie` must not drop the `Origin` a cache needs.
 */
export function withCorsHeaders(cors: Record<string, string>, answer: Record<string, string>): Record<string, string> {
  const merged = { ...cors, ...answer };
  if (cors.vary === undefined || answer.vary === undefined) return merged;
  const listed = answer.vary.split(',').map((name) => name.trim().toLowerCase());
  if (!listed.includes('*') && !listed.includes('origin')) merged.vary = `${answer.vary}, ${cors.vary}`;
  return merged;
}

function originMatcher(origin: CorsOptions['origin']): (value: string) => boolean {
  if (origin === true) return () => true;
  if (typeof origin === 'function') return (value) => origin(value) === true;
  const list = typeof origin === 'string' ? [origin] : origin;
  if (!Array.isArray(list) || list.length === 0 || !list.every((item) => typeof item === 'string' && item !== '')) {
    throw corsError('origin: true, a predicate, or one or more origins such as "https://app.example"', origin);
  }
  for (const item of list) {
    // A trailing slash or a path never matches what browsers send: fail at start-up, not in production.
    if (item !== 'null' && !/^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]+$/i.test(item)) {
      throw corsError(`origin: scheme://host[:port] with no path; ${JSON.stringify(item)} is not`, origin);
    }
  }
  const allowed = new Set(list.map((item) => item.toLowerCase()));
  return (value) => allowed.has(value.toLowerCase());
}

function header(request: SseRequest, name: string): string | undefined {
  const value = requestHeader(request, name);
  return value === '' ? undefined : value;
}

function corsError(expected: string, value: unknown): TypeError {
  let shown: string;
  try {
    shown = typeof value === 'function' ? 'a function' : JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value);
  }
  return new TypeError(`serve-sse: option cors needs ${expected}; got ${shown}`);
}
