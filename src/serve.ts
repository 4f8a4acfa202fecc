import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { acceptStream, checkConnectResult, type ConnectAnswer, type ConnectResult, type OnConnect } from './connect.js';
import { isThenable } from './thenable.js';
import { resolveCors, withCorsHeaders, type Cors, type CorsOption, type CorsVerdict } from './cors.js';
import { formatRetry } from './format.js';
import { sharedHeartbeat, type Heartbeat } from './heartbeat.js';
import { DEFAULT_MAX_LAST_EVENT_ID_LENGTH, lastEventIdOf } from './last-event-id.js';
import { consoleLogger, type Logger } from './logger.js';
import { sharedSlowWatch, type SlowWatch } from './slow-clients.js';
import { SseConnection, type SlowClientPolicy, type SseRequest } from './stream.js';
import { NodeSink, whenResponseHasSocket, type NodeResponse } from './transports/node.js';
import { WebSink } from './transports/web.js';
import { Payload } from './transports/payload.js';
import { runWriter, type StreamWriter } from './writer.js';

export type { StreamWriter } from './writer.js';

export interface ServeSseOptions<Req extends SseRequest = SseRequest> {
  /** Decides the status and headers before anything is written (authentication). Default: {@link defaultOnConnect}. */
  onConnect?: OnConnect<Req>;
  /** Milliseconds between keep-alive comments on an idle stream; `false` for none. Default 15 000. */
  keepAlive?: number | false;
  /** Reconnection delay (ms) sent to the client once, when the stream opens. */
  retry?: number;
  /**
   * Unsent bytes per client above which it is watched: if it stays over them for
   * `slowClientTimeout`, `onSlowClient` applies. `"wait"` sends wait while over them. Default 65 536.
   */
  highWaterMark?: number;
  /**
   * Milliseconds a client may stay over `highWaterMark` before it counts as slow: a burst the
   * client is reading is not slow. Default 10 000.
   */
  slowClientTimeout?: number;
  /**
   * Unsent bytes per client at which it counts as slow at once, however recent: the most a client
   * that reads nothing can hold (plus one write). Default 2 MiB, or twice `highWaterMark` if more.
   */
  maxBuffered?: number;
  /**
   * What happens to a slow client. Default `"wait"`: `send` waits while the client is over
   * `highWaterMark`, and a client that does not drain within `slowClientTimeout` is disconnected.
   * `"drop"` skips events until the client is back under the mark, `"close"` disconnects it.
   */
  onSlowClient?: SlowClientPolicy;
  /** Where warnings and errors go: pino, console, or anything with the same four methods. */
  logger?: Logger;
  /** Longest `Last-Event-ID` accepted, in characters; longer ones count as absent. Default 1 024. */
  maxLastEventIdLength?: number;
  /**
   * Cross-origin access: the allowed origins, or `{ origin, credentials, maxAge }`. Other origins
   * get a 403, and preflight requests are answered. Default: no CORS headers (same origin only).
   */
  cors?: CorsOption;
}

/** A Node response, or the Express/Connect `next` callback. */
export type NextFunction = (error?: unknown) => void;
type NodeServerResponse = import('node:http').ServerResponse | import('node:http2').Http2ServerResponse;

/** The Node side of a request type: what the `(req, res, next)` form takes. */
export type NodeRequestOf<Req extends SseRequest> = Exclude<Req, Request>;
/** The Fetch side of a request type: what `fetch(request)` takes. */
export type FetchRequestOf<Req extends SseRequest> = Extract<Req, Request>;

/**
 * A handler for both kinds of server. `Req` is the request type its writer and `onConnect` were
 * written for: a handler written for Express's `Request` takes only that in its Node form, and
 * has no usable `fetch` (its parameter is `never`), so a mismatch is a type error, not a crash.
 */
export interface SseHandler<Req extends SseRequest = SseRequest> {
  /** node:http, node:http2 (compat API), Express, Connect. */
  (req: NodeRequestOf<Req>, res: NodeServerResponse, next?: NextFunction): void;
  /** Fetch API (Hono, Next.js route handlers, Bun, Deno): a streaming `Response`. */
  fetch(request: FetchRequestOf<Req>): Promise<Response>;
}

const DEFAULT_KEEP_ALIVE = 15_000;
const DEFAULT_HIGH_WATER_MARK = 64 * 1024;
const DEFAULT_SLOW_CLIENT_TIMEOUT = 10_000;
/** Above any burst of up to 1 MiB, with room for what was unsent before it. */
const DEFAULT_MAX_BUFFERED = 2 * 1024 * 1024;
const SLOW_CLIENT_POLICIES: readonly SlowClientPolicy[] = ['wait', 'drop', 'close'];

/** Options, checked and resolved. */
export interface Settings {
  onConnect: OnConnect;
  heartbeat: Heartbeat | undefined;
  /** One function for every connection of the handler, rather than a closure each. */
  leaveHeartbeat: ((connection: SseConnection) => void) | undefined;
  /** The first bytes of every stream, framed once for all of them. */
  opening: Payload;
  highWaterMark: number;
  maxBuffered: number;
  slowWatch: SlowWatch;
  onSlowClient: SlowClientPolicy;
  logger: Logger;
  maxLastEventIdLength: number;
  cors: Cors | undefined;
}

/**
 * Turns a function that writes events into an HTTP handler for Node servers and Fetch runtimes.
 * @throws TypeError naming the option when an option is invalid.
 */
export function serveSse<Req extends SseRequest = SseRequest>(writer: StreamWriter<Req>, options: ServeSseOptions<Req> = {}): SseHandler<Req> {
  if (typeof writer !== 'function') throw new TypeError('serve-sse: serveSse(writer) needs a function');
  const settings = resolveSettings(options);
  return createSseHandler(settings, (connection, logger) => void runWriter(logger, writer, connection));
}

/**
 * What happens once a stream is open: run a writer, or (for a hub) just subscribe. `logger` is
 * where this request's problems go: the handler's, or the framework's (see {@link SERVE_NODE}).
 */
export type Opener = (connection: SseConnection, logger: Logger) => void;

/**
 * Internal, for the framework adapters (not in the public index): the Node entry point of a
 * handler, with what the public `(req, res, next)` signature has no room for. It resolves once
 * the answer has started (headers written) or there is nobody left to answer, and never rejects.
 * `Symbol.for`, so that an adapter loaded as CommonJS still finds it on an ES-module handler.
 */
export const SERVE_NODE: unique symbol = Symbol.for('serve-sse.serveNode');

export interface AdapterExtras {
  /** The framework's per-request logger, used when the app gave the handler no `logger`. */
  logger?: Logger;
}

export type NodeEntry = (
  req: IncomingMessage | Http2ServerRequest,
  res: NodeServerResponse,
  next: NextFunction | undefined,
  extras: AdapterExtras,
) => Promise<void>;

/**
 * The handler for both transports around an opener: negotiation, headers and the stream's
 * lifecycle live here once; what differs between serveSse and a hub is only the opener.
 */
export function createSseHandler(settings: Settings, open: Opener): SseHandler {
  const failedToAnswer = (res: NodeResponse, logger: Logger, error: unknown): void => {
    // Only a bug or a broken response gets here (a header value Node refuses, say).
    logger.error(error, 'serve-sse: could not answer the request');
    try {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    } catch {
      // A response too broken to end: only dropping the connection is left.
      res.destroy();
    }
  };
  // Synchronous unless onConnect or the socket makes it wait: a stream that opens at once costs
  // no promise.
  const serve = (req: IncomingMessage | Http2ServerRequest, res: NodeServerResponse, next: NextFunction | undefined, logger: Logger): Promise<void> => {
    try {
      const pending = serveNode({ settings, logger, open, req, res: res as NodeResponse, next });
      if (pending !== undefined) return pending.catch((error: unknown) => failedToAnswer(res as NodeResponse, logger, error));
    } catch (error) {
      failedToAnswer(res as NodeResponse, logger, error);
    }
    return ANSWERED;
  };
  const handler = (req: IncomingMessage | Http2ServerRequest, res: NodeServerResponse, next?: NextFunction): void => {
    void serve(req, res, next, settings.logger);
  };
  handler.fetch = (request: Request): Promise<Response> => serveFetch(settings, open, request);
  const entry: NodeEntry = (req, res, next, { logger }) =>
    // The console default is what an app gets when it chose nothing: the framework's logger is a better guess.
    serve(req, res, next, logger !== undefined && settings.logger === consoleLogger ? logger : settings.logger);
  Object.defineProperty(handler, SERVE_NODE, { value: entry });
  return handler;
}

/**
 * Checks the options once, when a handler is made, so that a typo fails at start-up. Options for
 * any request type: the handler hands its `onConnect` the requests it was typed for.
 */
export function resolveSettings(options: ServeSseOptions<never>): Settings {
  const {
    // What defaultOnConnect answers, without building it for every request.
    onConnect = acceptStream,
    keepAlive = DEFAULT_KEEP_ALIVE,
    retry,
    highWaterMark = DEFAULT_HIGH_WATER_MARK,
    slowClientTimeout = DEFAULT_SLOW_CLIENT_TIMEOUT,
    maxBuffered,
    onSlowClient = 'wait',
    logger = consoleLogger,
    maxLastEventIdLength = DEFAULT_MAX_LAST_EVENT_ID_LENGTH,
    cors,
  } = options;
  if (typeof onConnect !== 'function') throw optionError('onConnect', 'a function', onConnect);
  if (keepAlive !== false && !isPositiveInteger(keepAlive)) {
    throw optionError('keepAlive', 'a positive number of milliseconds or false', keepAlive);
  }
  if (retry !== undefined && !(Number.isSafeInteger(retry) && retry >= 0)) {
    throw optionError('retry', 'a non-negative integer (milliseconds)', retry);
  }
  if (!isPositiveInteger(highWaterMark)) throw optionError('highWaterMark', 'a positive number of bytes', highWaterMark);
  if (!isPositiveInteger(slowClientTimeout)) throw optionError('slowClientTimeout', 'a positive number of milliseconds', slowClientTimeout);
  if (maxBuffered !== undefined && !(isPositiveInteger(maxBuffered) && maxBuffered >= highWaterMark)) {
    throw optionError('maxBuffered', `a number of bytes no smaller than highWaterMark (${highWaterMark})`, maxBuffered);
  }
  if (!SLOW_CLIENT_POLICIES.includes(onSlowClient)) {
    throw optionError('onSlowClient', '"wait", "drop" or "close"', onSlowClient);
  }
  for (const method of ['error', 'warn', 'info', 'debug'] as const) {
    if (typeof logger?.[method] !== 'function') throw optionError('logger', `an object with a ${method}() method`, logger);
  }
  if (!isPositiveInteger(maxLastEventIdLength)) {
    throw optionError('maxLastEventIdLength', 'a positive integer', maxLastEventIdLength);
  }
  const heartbeat = keepAlive === false ? undefined : sharedHeartbeat(keepAlive);
  return {
    onConnect: onConnect as OnConnect,
    heartbeat,
    leaveHeartbeat: heartbeat === undefined ? undefined : (connection) => heartbeat.delete(connection),
    // The first bytes go out at once: they push the headers through buffering proxies and beat
    // first-byte timeouts. A retry hint, when there is one, serves; else an empty comment.
    opening: new Payload(new TextEncoder().encode(retry === undefined ? ':\n\n' : `retry: ${formatRetry(retry)}\n\n`)),
    highWaterMark,
    maxBuffered: maxBuffered ?? Math.max(DEFAULT_MAX_BUFFERED, 2 * highWaterMark),
    slowWatch: sharedSlowWatch(slowClientTimeout),
    onSlowClient,
    logger,
    maxLastEventIdLength,
    cors: cors === undefined ? undefined : resolveCors(cors),
  };
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function optionError(name: string, expected: string, value: unknown): TypeError {
  return new TypeError(`serve-sse: option ${name} must be ${expected}; got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
}

/**
 * CORS, then `onConnect`, with its failures logged and turned into a 500 rather than thrown at the
 * server. A refused origin or a preflight is answered before `onConnect` runs.
 *
 * Synchronous when `onConnect` is (the default is): a connection then costs no promise and no
 * turn of the event loop before its head is written, which is what a reconnection wave needs.
 */
function negotiate(settings: Settings, logger: Logger, request: SseRequest): ConnectAnswer | Promise<ConnectAnswer> {
  const cors = settings.cors?.check(request);
  if (cors?.kind === 'answer') return cors;
  let result: ConnectResult | Promise<ConnectResult>;
  try {
    result = settings.onConnect(request);
  } catch (error) {
    return settle(logger, request, cors, failedResult(logger, error));
  }
  if (!isThenable(result)) return settle(logger, request, cors, result);
  return Promise.resolve(result).then(
    (answer) => settle(logger, request, cors, answer),
    (error: unknown) => settle(logger, request, cors, failedResult(logger, error)),
  );
}

/** What onConnect returned, checked (a 500 if it is wrong), with the CORS headers. */
function settle(logger: Logger, request: SseRequest, cors: CorsVerdict | undefined, result: ConnectResult): ConnectAnswer {
  let answer: ConnectAnswer;
  try {
    answer = checkConnectResult(result, request);
  } catch (error) {
    answer = failed(logger, error);
  }
  // On every answer, refusals included, so that a cross-origin client can read why.
  if (cors !== undefined) answer.headers = withCorsHeaders(cors.headers, answer.headers);
  return answer;
}

/** What `serve` resolves with once the answer has started synchronously. */
const ANSWERED: Promise<void> = Promise.resolve();

const INTERNAL_ERROR = { status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'Internal Server Error' };

function failed(logger: Logger, error: unknown): ConnectAnswer {
  logger.error(error, 'serve-sse: onConnect failed; answered 500');
  return { ...INTERNAL_ERROR };
}

function failedResult(logger: Logger, error: unknown): ConnectResult {
  logger.error(error, 'serve-sse: onConnect failed; answered 500');
  return INTERNAL_ERROR;
}

function openConnection(settings: Settings, request: SseRequest): SseConnection {
  return new SseConnection(request, lastEventIdOf(request, settings.maxLastEventIdLength), settings);
}

/** Opens the stream: first bytes, heartbeat, then the opener. Shared by both transports. */
function start(settings: Settings, logger: Logger, open: Opener, connection: SseConnection): void {
  connection.offer(settings.opening);
  settings.heartbeat?.add(connection);
  open(connection, logger);
}

/** One Node request being answered: what every step of the answer needs. */
interface NodeCall {
  readonly settings: Settings;
  readonly logger: Logger;
  readonly open: Opener;
  readonly req: IncomingMessage | Http2ServerRequest;
  readonly res: NodeResponse;
  readonly next: NextFunction | undefined;
}

/** Answers a Node request: synchronously when nothing makes it wait, else with a promise of the answer. */
function serveNode(call: NodeCall): Promise<void> | undefined {
  const negotiated = negotiate(call.settings, call.logger, call.req);
  if (isThenable(negotiated)) return negotiated.then((answer) => answerNode(call, answer));
  return answerNode(call, negotiated);
}

function answerNode(call: NodeCall, answer: ConnectAnswer): Promise<void> | undefined {
  const { req, res, next } = call;
  // The client may have left while onConnect was deciding: then there is nobody to answer.
  if (res.destroyed === true || res.writableEnded) return undefined;
  if (res.headersSent) {
    const error = new Error('serve-sse: the response headers were already sent, so no event stream can start; mount the SSE handler before anything that writes the response');
    if (next !== undefined) next(error);
    else {
      call.logger.error(error, error.message);
      res.end();
    }
    return undefined;
  }
  // HEAD asks what a GET would get (Fastify routes every GET's HEAD here): the head, no stream.
  if (answer.status !== 200 || req.method === 'HEAD') {
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
    return undefined;
  }
  // Pipelined behind another response: the stream starts once it has the connection, if ever.
  const owned = whenResponseHasSocket(req, res);
  if (owned !== true) return owned.then((has) => (has ? openNode(call, answer) : undefined));
  openNode(call, answer);
  return undefined;
}

function openNode({ settings, logger, open, req, res }: NodeCall, answer: ConnectAnswer): void {
  const connection = openConnection(settings, req);
  connection.attach(new NodeSink(res, connection));
  res.writeHead(200, answer.headers);
  start(settings, logger, open, connection);
}

async function serveFetch(settings: Settings, open: Opener, request: Request): Promise<Response> {
  const negotiated = negotiate(settings, settings.logger, request);
  const answer = isThenable(negotiated) ? await negotiated : negotiated;
  // The client left while onConnect was deciding: answer nobody, and start no writer.
  if (request.signal.aborted) return new Response(null, { status: 499 });
  if (answer.status !== 200 || request.method === 'HEAD') {
    const bodyless = answer.status === 204 || answer.status === 205 || answer.status === 304 || request.method === 'HEAD';
    return new Response(bodyless ? null : (answer.body ?? null), { status: answer.status, headers: answer.headers });
  }
  const connection = openConnection(settings, request);
  const sink = new WebSink(connection);
  connection.attach(sink);
  // Some runtimes never cancel the body when the client leaves, but do abort the request: the
  // body is ended too, so that nothing holds on to it.
  const { signal } = request;
  const gone = (): void => {
    connection.gone();
    sink.end();
  };
  if (signal.aborted) gone();
  else {
    signal.addEventListener('abort', gone, { once: true });
    connection.signal.addEventListener('abort', () => signal.removeEventListener('abort', gone), { once: true });
  }
  start(settings, settings.logger, open, connection);
  return new Response(sink.readable, { status: 200, headers: answer.headers });
}
