/**
 * Where a Mercure request's access token comes from. Three mechanisms, in this precedence (both
 * drafts agree): the `Authorization: Bearer` header, then the query parameter (`authorization`
 * in draft-07, `access_token` in draft-08), then the cookie (`mercureAuthorization` in draft-07,
 * `__Secure-mercure_access_token` in the draft-08 snapshot clients send today, `mercureAccessToken`
 * in the current draft-08 text). The first mechanism present is the one used, even when its token
 * turns out to be invalid: a lower one is never tried instead.
 */
import type { SseRequest } from '../../../stream.js';
import { requestHeader } from '../../../request-header.js';

/** Which mechanism carried the token: a cookie needs CSRF protection, the others do not. */
export type TokenVia = 'header' | 'query' | 'cookie';

/** A token as presented, not yet verified; or a malformed presentation (answer 400 `invalid_request`). */
export type PresentedToken =
  | { readonly via: TokenVia; readonly token: string; readonly problem?: undefined }
  | { readonly via: TokenVia; readonly token?: undefined; readonly problem: string };

/** Cookie names tried when none are configured, in this order: newest dialect first. */
export const DEFAULT_COOKIE_NAMES: readonly string[] = ['mercureAccessToken', '__Secure-mercure_access_token', 'mercureAuthorization'];

/** Query parameters that carry a token: draft-08's then draft-07's. */
export const TOKEN_QUERY_PARAMETERS: readonly string[] = ['access_token', 'authorization'];

/** Longest token accepted, in characters; a longer one is refused before any parsing. */
export const MAX_TOKEN_LENGTH = 16_384;

export interface ExtractOptions {
  /** The cookie names to read, in order of preference. Default {@link DEFAULT_COOKIE_NAMES}. */
  cookieNames?: readonly string[];
  /** Whether the query parameters are read (default true: both drafts allow it as a MAY). */
  query?: boolean;
  /** The request's query string (without `?`) when the caller has it already; otherwise read from the request's URL. */
  search?: string;
}

// RFC 6750 §2.1: "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1).
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const SCHEME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;

/**
 * The token a request presents, and how; undefined when it presents none. Never throws, never
 * verifies: {@link TokenVerifier.verify} does that.
 */
export function extractToken(request: SseRequest, options: ExtractOptions = {}): PresentedToken | undefined {
  const header = requestHeader(request, 'authorization')?.trim();
  if (header !== undefined && header !== '') {
    const match = BEARER.exec(header);
    if (match !== null) return sized('header', match[1]!);
    const scheme = SCHEME.exec(header)?.[0];
    if (scheme !== undefined && scheme.toLowerCase() !== 'bearer') {
      return { via: 'header', problem: `the Authorization header uses the ${scheme.slice(0, 20)} scheme: this hub takes Bearer tokens` };
    }
    return { via: 'header', problem: 'the Authorization header must be "Bearer" followed by a space and the token' };
  }
  if (options.query !== false) {
    const fromQuery = queryToken(options.search ?? searchOf(request));
    if (fromQuery !== undefined) return fromQuery;
  }
  return cookieToken(request, options.cookieNames ?? DEFAULT_COOKIE_NAMES);
}

function sized(via: TokenVia, token: string): PresentedToken {
  if (token.length > MAX_TOKEN_LENGTH) return { via, problem: `the access token is longer than ${MAX_TOKEN_LENGTH} characters` };
  return { via, token };
}

/** The query string of a Node request (`/path?query`) or a Fetch Request (an absolute URL). */
function searchOf(request: SseRequest): string {
  const url = request.url ?? '';
  const start = url.indexOf('?');
  if (start === -1) return '';
  const end = url.indexOf('#', start);
  return url.slice(start + 1, end === -1 ? undefined : end);
}

function queryToken(search: string): PresentedToken | undefined {
  // Most requests carry no token in the query: skip decoding them.
  if (!TOKEN_QUERY_PARAMETERS.some((name) => search.includes(`${name}=`))) return undefined;
  const params = new URLSearchParams(search);
  const values = TOKEN_QUERY_PARAMETERS.flatMap((name) => params.getAll(name));
  if (values.length === 0) return undefined;
  // RFC 6750 §3.1: a repeated parameter is an invalid request; a repeated equal value does no harm.
  if (values.some((value) => value !== values[0])) return { via: 'query', problem: 'the request carries several different access tokens in its query' };
  const token = values[0]!;
  if (token === '') return { via: 'query', problem: `an empty ${TOKEN_QUERY_PARAMETERS.join(' or ')} query parameter` };
  return sized('query', token);
}

function cookieToken(request: SseRequest, names: readonly string[]): PresentedToken | undefined {
  const found = new Map<string, string>();
  for (const header of cookieHeaders(request)) {
    // A cookie value holds neither ";" nor "," (RFC 6265 §4.1.1): a Fetch runtime that joined
    // several Cookie headers with ", " splits back as well as one with "; ".
    for (const pair of header.split(/[;,]/)) {
      const at = pair.indexOf('=');
      if (at === -1) continue;
      const name = pair.slice(0, at).trim();
      // The first of a name wins: browsers send the cookie of the longest path first.
      if (!names.includes(name) || found.has(name)) continue;
      let value = pair.slice(at + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      // An empty value is a cleared cookie, not a token.
      if (value !== '') found.set(name, value);
    }
  }
  for (const name of names) {
    const value = found.get(name);
    if (value !== undefined) return sized('cookie', value);
  }
  return undefined;
}

/**
 * Every Cookie header of the request. HTTP/2 clients may split cookies into several header
 * fields (RFC 9113 §8.2.3), which a Node request keeps apart in its raw list, where
 * `requestHeader` would only see the first.
 */
function cookieHeaders(request: SseRequest): string[] {
  if (!('rawHeaders' in request)) {
    const value = requestHeader(request, 'cookie');
    return value === undefined ? [] : [value];
  }
  const raw = request.rawHeaders;
  const values: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i]!;
    if (key.length === 6 && key.toLowerCase() === 'cookie') values.push(raw[i + 1]!);
  }
  return values;
}
