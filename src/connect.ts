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

/** A `ConnectResult` checked and brought to one shape, header names in lower case. */
export interface ConnectAnswer {
  status: number;
  headers: Record<string, string>;
  body: string | undefined;
}

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
 * Runs `onConnect` and checks what it returned.
 * @throws TypeError naming what is wrong with the result, or whatever `onConnect` threw.
 */
export async function runOnConnect(onConnect: OnConnect, request: SseRequest): Promise<ConnectAnswer> {
  const result = await onConnect(request);
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
  const answer: ConnectAnswer = { status, headers: {}, body };
  const hopByHop = forbidsHopByHop(request);
  // The defaults apply to the event stream only: a refusal carries just the app's own headers.
  if (status === 200) addHeaders(answer.headers, defaultOnConnect(request).headers, hopByHop);
  if (headers !== undefined) {
    if (headers === null || typeof headers !== 'object') {
      throw new TypeError('serve-sse: onConnect returned headers that are not an object of strings');
    }
    addHeaders(answer.headers, headers as Record<string, unknown>, hopByHop);
  }
  return answer;
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
