/** Shared test plumbing: real servers on 127.0.0.1 and port 0, and raw HTTP reads. */
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as netConnect } from 'node:net';
import { Readable } from 'node:stream';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import assert from 'node:assert/strict';
import { after, afterEach } from 'node:test';
import { defaultOnConnect, serveSse, type Hub, type OnConnect, type SseHandler, type SseRequest, type SseStream, type StreamWriter } from '../src/index.js';
import { sharedHeartbeat } from '../src/heartbeat.js';

export interface Running {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Starts a node:http server on 127.0.0.1:0; `close()` also ends open event streams. */
export async function listen(listener: RequestListener, server: Server = createServer()): Promise<Running> {
  server.on('request', listener);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** GET with optional headers; resolves with the response as soon as headers arrive. */
export function get(url: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
}

/** Reads a whole response body as text. */
export async function text(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let body = '';
  for await (const chunk of res) body += chunk as string;
  return body;
}

/** Parses an event-stream response with eventsource-parser (an independent oracle). */
export class EventReader {
  readonly events: EventSourceMessage[] = [];
  readonly comments: string[] = [];
  retry: number | undefined;
  ended = false;
  #waiters: Array<() => void> = [];

  constructor(readonly res: IncomingMessage) {
    const parser = createParser({
      onEvent: (event) => {
        this.events.push(event);
        this.#wake();
      },
      onComment: (comment) => {
        this.comments.push(comment);
        this.#wake();
      },
      onRetry: (retry) => {
        this.retry = retry;
        this.#wake();
      },
    });
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => parser.feed(chunk));
    res.on('close', () => {
      this.ended = true;
      this.#wake();
    });
  }

  /** Waits until `predicate` holds, or fails after `ms`. */
  async until(predicate: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + ms;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${this.events.length} events: ${JSON.stringify(this.events).slice(0, 400)}`);
      // The timer is cleared when an event wakes us first, so no stray timers outlive the wait.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, 50);
      });
      clearTimeout(timer);
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** Opens an event stream and returns a reader on it. */
export async function openEvents(url: string, headers: Record<string, string> = {}): Promise<EventReader> {
  return new EventReader(await get(url, { accept: 'text/event-stream', ...headers }));
}

/** Polls `predicate` (sync or async) until it holds or `ms` pass. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A logger that records what it is given, for assertions. */
export function recordingLogger() {
  const lines: Array<{ level: string; obj: unknown; msg: string | undefined }> = [];
  const at = (level: string) => (obj: unknown, msg?: string) => void lines.push({ level, obj, msg });
  return { lines, logger: { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') } };
}

/** An `onConnect` that holds every request until `release()`: room for a client to leave meanwhile. */
export function heldOnConnect(): { onConnect: OnConnect; requests: SseRequest[]; release(): void } {
  const requests: SseRequest[] = [];
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const onConnect: OnConnect = async (request) => {
    requests.push(request);
    await released;
    return defaultOnConnect(request);
  };
  return { onConnect, requests, release };
}

/** Whether the client behind a request has hung up, whichever kind of request it is. */
export function clientGone(request: SseRequest): boolean {
  return 'socket' in request ? request.socket.destroyed : request.signal.aborted;
}

/**
 * A client that sends `GET path` and hangs up while the held `onConnect` is deciding; resolves
 * once the server has seen it go and `onConnect` has answered (to nobody).
 */
export async function leaveDuringOnConnect(url: string, held: ReturnType<typeof heldOnConnect>): Promise<void> {
  const { hostname, port, pathname, search } = new URL(url);
  const socket = netConnect(Number(port), hostname);
  await once(socket, 'connect');
  socket.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}\r\nAccept: text/event-stream\r\n\r\n`);
  await waitFor(() => held.requests.length === 1, 5000, 'the request to reach onConnect');
  socket.destroy();
  await waitFor(() => clientGone(held.requests[0]!), 5000, 'the server to see the client go');
  held.release();
  // Whatever the answer would start happens within a few turns of the event loop.
  await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Parses any readable byte stream as an event stream (a gunzipped body, say); `res` is that stream. */
export function streamEvents(stream: Readable): EventReader {
  // EventReader reads any Node readable; the cast only borrows its type.
  return new EventReader(stream as unknown as IncomingMessage);
}

/** Reads a Fetch `Response`'s event stream like {@link openEvents}; `res.destroy()` cancels the body. */
export function responseEvents(response: Response): EventReader {
  if (response.body === null) throw new Error(`no body to read (status ${response.status})`);
  return streamEvents(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream));
}

/** A test file's servers: `start(listener)` resolves with a URL; every server closes after the file's tests. */
export function serverPool(): (listener: RequestListener) => Promise<string> {
  const running: Running[] = [];
  after(() => Promise.all(running.map((r) => r.close())));
  return async (listener) => {
    const started = await listen(listener);
    running.push(started);
    return started.url;
  };
}

/** A writer that keeps each stream open until its client goes, and the streams it was given. */
export function holdingWriter(): { writer: StreamWriter; streams: SseStream[] } {
  const streams: SseStream[] = [];
  const writer: StreamWriter = async (_request, stream) => {
    streams.push(stream);
    if (!stream.closed) await once(stream.signal, 'abort');
  };
  return { writer, streams };
}

/**
 * Opens the stream a {@link holdingWriter} serves at `url` (with its own `keepAlive`), hangs up,
 * and checks that the stream aborted and left the shared keep-alive timer.
 */
export async function checkHangUpCleansUp(url: string, streams: SseStream[], keepAlive: number): Promise<void> {
  const reader = await openEvents(url);
  await waitFor(() => streams.length === 1, 5000, 'the writer to start');
  assert.equal(sharedHeartbeat(keepAlive).size, 1, 'the open stream is on the keep-alive timer');
  reader.res.destroy();
  await waitFor(() => streams[0]!.signal.aborted, 5000, 'the stream to abort');
  assert.equal(streams[0]!.closed, true);
  await waitFor(() => sharedHeartbeat(keepAlive).size === 0, 5000, 'the stream to leave the keep-alive timer');
}

/**
 * Subscribes at `url` (a hub handler, wherever it is mounted), then publishes `count` events to
 * `topic`, each checked to arrive, with the id publish returned, before the next is published;
 * then hangs up and checks the subscription ends.
 */
export async function checkHubDelivery(hub: Hub, url: string, topic: string, count = 1, headers: Record<string, string> = {}): Promise<EventReader> {
  const reader = await openEvents(url, headers);
  assert.equal(reader.res.statusCode, 200);
  await waitFor(() => hub.stats().connections === 1, 5000, 'the subscription');
  for (let n = 1; n <= count; n++) {
    const id = await hub.publish(topic, { event: 'note', data: `${topic} ${n}` });
    await reader.until(() => reader.events.length === n, 2000, `event ${n} on its own`);
    assert.deepEqual([reader.events[n - 1]!.event, reader.events[n - 1]!.id, reader.events[n - 1]!.data], ['note', id, `${topic} ${n}`]);
  }
  reader.res.destroy();
  await waitFor(() => hub.stats().connections === 0, 5000, 'the subscription to end');
  return reader;
}

/**
 * A handler for the "client leaves while onConnect decides" case: its onConnect is held, its
 * writer counted, its logger recorded. `check(url, res)` plays the case and asserts that nothing
 * happened: no writer, no log line, nothing on the keep-alive timer, and (given the server's
 * response object) nothing written.
 */
export function leavingClientCase(keepAlive: number): {
  handler: SseHandler;
  check(url: string, response?: () => { headersSent: boolean } | undefined): Promise<void>;
} {
  const held = heldOnConnect();
  const { lines, logger } = recordingLogger();
  let writerCalls = 0;
  const handler = serveSse(() => void writerCalls++, { onConnect: held.onConnect, logger, keepAlive });
  return {
    handler,
    async check(url, response) {
      await leaveDuringOnConnect(url, held);
      assert.equal(writerCalls, 0, 'the writer never ran');
      assert.deepEqual(lines, [], 'nothing was logged');
      assert.equal(sharedHeartbeat(keepAlive).size, 0);
      if (response !== undefined) assert.equal(response()?.headersSent, false, 'nothing was written');
    },
  };
}

/**
 * A handler whose onConnect refuses (401, `WWW-Authenticate: Bearer`, a body) and whose writer is
 * counted. `check(url, headers)` asserts the client got all of that, plus `headers` set by the
 * framework's own middleware, and that the writer never ran.
 */
export function refusingCase(): { handler: SseHandler; check(url: string, headers?: Record<string, string>): Promise<void> } {
  let writerCalls = 0;
  const handler = serveSse(() => void writerCalls++, {
    onConnect: () => ({ status: 401, headers: { 'WWW-Authenticate': 'Bearer' }, body: 'log in first' }),
  });
  return {
    handler,
    async check(url, headers = {}) {
      const res = await get(url);
      assert.equal(res.statusCode, 401);
      assert.equal(res.headers['www-authenticate'], 'Bearer');
      for (const [name, value] of Object.entries(headers)) assert.equal(res.headers[name], value, `${name} from the middleware`);
      assert.equal(await text(res), 'log in first');
      assert.equal(writerCalls, 0, 'the writer never ran');
    },
  };
}

/**
 * Fails the running test if anything escaped as an unhandled rejection or exception meanwhile:
 * for code that must swallow every error of a dependency it cannot control (Redis going away).
 */
export function failOnEscapedErrors(): void {
  const escaped: unknown[] = [];
  const record = (error: unknown): number => escaped.push(error);
  process.on('unhandledRejection', record);
  process.on('uncaughtException', record);
  after(() => {
    process.off('unhandledRejection', record);
    process.off('uncaughtException', record);
  });
  afterEach(() => assert.deepEqual(escaped.splice(0), []));
}
