/** Shared test plumbing: real servers on 127.0.0.1 and port 0, and raw HTTP reads. */
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

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
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
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

/** Polls `predicate` until it holds or `ms` pass. */
export async function waitFor(predicate: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
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
