import type { SseRequest } from './stream.js';

/**
 * How `onConnect` answers: `{ status, headers?, body? }` or `[status, headers?]`. Status 200 opens
 * the stream (its headers merged over the defaults); any other status is sent as the whole
 * answer, and the writer never runs. Clients do not reconnect after a non-200 answer, so 204 is
 * the way to say "stop", and 401/403 are final.
 */
export type ConnectResult =
  | { status: number; headers?: Record<string, string>; body?: string }
  | [status: number, headers?: Record<string, string>];

/** Decides the answer to a request before anything is written. `Req`: the request type, as for `StreamWriter`. */
export type OnConnect<Req extends SseRequest = SseRequest> = (request: Req) => ConnectResult | Promise<ConnectResult>;

/**
 * A `ConnectResult` checked and brought to one shape, header names in lower case. `headers` may be
 * shared between answers (the plain stream's): replace it, never change it.
 */
export interface ConnectAnswer {
  status: number;
  headers: Readonly<Record<string, string>>;
  body: string | undefined;
}

/**
 * "The stream, with the default headers": what a handler answers when the app gave no
 * `onConnect`. One object for every request, so that the common case builds nothing.
 */
export const ACCEPT: ConnectResult = Object.freeze({ status: 200 });
export const acceptStream = (): ConnectResult => ACCEPT;

const CACHE_CONTROL = 'no-store, no-cache, must-revalidate, post-check=0, pre-check=0, no-transform';

/** The answer serve-sse gives when the app does not decide otherwise: 200, an event stream, no caching. */
export function defaultOnConnect(request: SseRequest): { status: 200; headers: Record<string, string> } {
  const headers: Record<string, string> = {
    'Content-Type': 'text/event-stream; charset=utf-8',
    // no-transform keeps compression middleware and proxies from buffering the stream.
    'Cache-Control': CACHE_CONTROL,
    // nginx buffers proxied responses unless told otherwise.
    'X-Accel-Buffering': 'no',
  };
  if (isHttp11(request)) headers.Connection = 'keep-alive';
  return { status: 200, headers };
}

/** The stream's default headers in lower case, per kind of request: built once, shared, frozen. */
const STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': CACHE_CONTROL,
  'x-accel-buffering': 'no',
});
const STREAM_HEADERS_HTTP11: Readonly<Record<string, string>> = Object.freeze({ ...STREAM_HEADERS, connection: 'keep-alive' });

function streamHeaders(request: SseRequest): Readonly<Record<string, string>> {
  return isHttp11(request) ? STREAM_HEADERS_HTTP11 : STREAM_HEADERS;
}

function isHttp11(request: SseRequest): boolean {
  // A Fetch `Request` carries no version: its runtime owns the connection headers.
  return 'httpVersion' in request && request.httpVersion === '1.1';
}

// Connection-specific headers are malformed on HTTP/2 (Node throws, Safari drops the stream) and
// belong to the runtime, not the app, behind the Fetch API.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** Whether the transport forbids connection-specific headers. */
function forbidsHopByHop(request: SseRequest): boolean {
  return !('httpVersionMajor' in request) || request.httpVersionMajor >= 2;
}

/**
 * Checks what `onConnect` returned and brings it to one shape.
 * @throws TypeError naming what is wrong with the result.
 */
export function checkConnectResult(result: ConnectResult, request: SseRequest): ConnectAnswer {
  let status: unknown;
  let headers: unknown;
  let body: unknown;
  if (Array.isArray(result)) {
    [status, headers] = result;
  } else if (result !== null && typeof result === 'object') {
    ({ status, headers, body } = result);
  } else {
    throw new TypeError(`serve-sse: onConnect must return { status, headers?, body? } or [status, headers?]; got ${String(result)}`);
  }
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
    throw new TypeError(`serve-sse: onConnect returned status ${String(status)}; expected an integer from 200 to 599`);
  }
  if (body !== undefined && typeof body !== 'string') {
    throw new TypeError('serve-sse: onConnect returned a body that is not a string');
  }
  // The plain stream, the common case: nothing to merge, the shared headers as they are.
  if (status === 200 && headers === undefined) return { status, headers: streamHeaders(request), body };
  // The defaults apply to the event stream only: a refusal carries just the app's own headers.
  const merged: Record<string, string> = status === 200 ? { ...streamHeaders(request) } : {};
  if (headers !== undefined) {
    if (headers === null || typeof headers !== 'object') {
      throw new TypeError('serve-sse: onConnect returned headers that are not an object of strings');
    }
    addHeaders(merged, headers as Record<string, unknown>, forbidsHopByHop(request));
  }
  return { status, headers: merged, body };
}

function addHeaders(target: Record<string, string>, source: Record<string, unknown>, dropHopByHop: boolean): void {
  for (const [name, value] of Object.entries(source)) {
    if (typeof value !== 'string') {
      throw new TypeError(`serve-sse: onConnect returned header ${JSON.stringify(name)} with a value that is not a string`);
    }
    const key = name.toLowerCase();
    if (dropHopByHop && HOP_BY_HOP.has(key)) continue;
    target[key] = value;
  }
}
