/**
 * One event stream over `fetch`, kept up: it reconnects after network errors, stalls, 5xx and 429
 * with a growing, jittered delay (never sooner than a `Retry-After`), resumes from the last id,
 * asks for fresh headers once on a 401, and gives up for good on 204, other 4xx, or an answer
 * that is not an event stream. What it reads goes to a {@link Sink}.
 */
import { createParser, type Dispatch } from './parse.js';

export type HeadersOption = HeadersInit | (() => HeadersInit | Promise<HeadersInit>);

export interface ConnectionSettings {
  url: string;
  withCredentials: boolean;
  headers: HeadersOption | undefined;
  /** First reconnection delay, ms, until the server sends `retry`. */
  retry: number;
  /** Longest delay between attempts, ms. */
  maxRetry: number;
  /** No byte for this long (ms) and the connection counts as dead; 0: never. */
  stallTimeout: number;
  fetch: typeof fetch;
}

/** Where a connection reports: the source itself, and through it the instances sharing it. */
export interface Sink {
  /** The last event ID string: what a (re)connection resumes from. */
  readonly lastEventId: string;
  opened(origin: string): void;
  /** A blank line: an event when `data` is not empty; either way the last event ID string is `id`. */
  dispatched(event: Dispatch, origin: string): void;
  /** The server's new reconnection time. */
  retried(ms: number): void;
  /** `final`: the source is closed for good; otherwise it reconnects. `status`: the HTTP status, if there was an answer. */
  failed(status: number | undefined, final: boolean): void;
}

export class Connection {
  #stopped = false;
  #abort: AbortController | undefined;
  #wake: (() => void) | undefined;

  constructor(
    readonly settings: ConnectionSettings,
    readonly sink: Sink,
  ) {
    // Started a microtask later: a first attempt that fails at once (a headers function or a fetch
    // that throws) would otherwise fire `error` inside the EventSource constructor, before the
    // caller could listen for it.
    void Promise.resolve().then(() => this.#run());
  }

  /** The current reconnection time; a `retry` field changes it. */
  get retry(): number {
    return this.settings.retry;
  }

  stop(): void {
    this.#stopped = true;
    this.#abort?.abort();
    this.#wake?.();
  }

  async #run(): Promise<void> {
    const { settings, sink } = this;
    let attempt = 0;
    let askedAgain = false;
    while (!this.#stopped) {
      let status: number | undefined;
      let delay: number;
      const abort = (this.#abort = new AbortController());
      const stall = new Stall(settings.stallTimeout, abort);
      try {
        // Asked before every connection: a token callback gives a fresh token each time.
        const headers = new Headers(typeof settings.headers === 'function' ? await settings.headers() : settings.headers);
        if (!headers.has('accept')) headers.set('accept', 'text/event-stream');
        // The header carries the id's UTF-8 bytes, as the native EventSource sends them. Header
        // values are byte strings: set as it is, an id past Latin-1 made Headers throw (taken for
        // a network error, so the client retried forever without a request), and one in Latin-1
        // went out as Latin-1 bytes.
        if (sink.lastEventId !== '') headers.set('last-event-id', String.fromCharCode(...new TextEncoder().encode(sink.lastEventId)));
        const response = await settings.fetch(settings.url, {
          headers,
          credentials: settings.withCredentials ? 'include' : 'same-origin',
          cache: 'no-store',
          signal: abort.signal,
        });
        status = response.status;
        if (status === 200 && isEventStream(response) && response.body !== null) {
          attempt = 0;
          askedAgain = false;
          const origin = new URL(response.url || settings.url).origin;
          sink.opened(origin);
          await read(response.body, stall, createParser({ dispatch: (event) => sink.dispatched(event, origin), retry: (ms) => sink.retried((settings.retry = ms)) }, sink.lastEventId));
        } else if (status === 401 && typeof settings.headers === 'function' && !askedAgain) {
          // Most likely an expired token: ask for a fresh one, once, at once.
          askedAgain = true;
          void response.body?.cancel().catch(() => {});
          continue;
        } else if (status !== 429 && status < 500) {
          void response.body?.cancel().catch(() => {});
          this.#stopped = true;
          sink.failed(status, true);
          return;
        } else {
          void response.body?.cancel().catch(() => {});
          const after = retryAfter(response.headers.get('retry-after'));
          delay = Math.max(backoff(settings, attempt++), after);
          sink.failed(status, false);
          if (await this.#sleep(delay)) continue;
          return;
        }
      } catch {
        // A network error, a stall, or the stream cut: all mean reconnect.
      } finally {
        stall.clear();
      }
      if (this.#stopped) return;
      delay = backoff(settings, attempt++);
      sink.failed(status === 200 ? undefined : status, false);
      if (!(await this.#sleep(delay))) return;
    }
  }

  /** Waits `ms`; false when stopped meanwhile. */
  #sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      // Stopped already (close() in an error listener, which runs before the wait begins): no
      // timer, or it would keep the process alive for the whole delay, up to maxRetry.
      if (this.#stopped) return resolve(false);
      const timer = setTimeout(() => resolve(!this.#stopped), ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve(false);
      };
    });
  }
}

/**
 * Attempt `n` (0 after a connection that opened) waits between 1 and 1.5 times `retry · 2ⁿ`,
 * capped: delays never shrink from one attempt to the next, never go below what the server asked,
 * and clients that failed together spread out.
 */
export function backoff({ retry, maxRetry }: Pick<ConnectionSettings, 'retry' | 'maxRetry'>, attempt: number): number {
  return Math.min(maxRetry, retry * 2 ** Math.min(attempt, 30) * (1 + Math.random() / 2));
}

/** `Retry-After` in ms: seconds, or an HTTP date; 0 when absent or unreadable. */
export function retryAfter(value: string | null): number {
  if (value === null) return 0;
  const ms = /^\s*\d+\s*$/.test(value) ? Number(value) * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

function isEventStream(response: Response): boolean {
  return /^text\/event-stream\s*(;|$)/i.test(response.headers.get('content-type') ?? '');
}

/** Reads the body into the parser until it ends; throws when it breaks or stalls. */
async function read(body: ReadableStream<Uint8Array>, stall: Stall, feed: (text: string) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  stall.arm();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    stall.arm();
    feed(decoder.decode(value, { stream: true }));
  }
}

/**
 * Aborts the fetch when no byte has come for `ms`. A chunk only notes its time: one timer runs per
 * `ms` and, when it fires early for the latest chunk, waits out the rest, rather than a timer
 * cleared and set again for every chunk read.
 */
class Stall {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #last = 0;

  constructor(
    readonly ms: number,
    readonly abort: AbortController,
  ) {
    this.arm();
  }

  arm(): void {
    if (this.ms <= 0) return;
    this.#last = performance.now();
    this.#timer ??= setTimeout(this.#check, this.ms);
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #check = (): void => {
    const left = this.#last + this.ms - performance.now();
    this.#timer = left > 0 ? setTimeout(this.#check, left) : undefined;
    if (left <= 0) this.abort.abort();
  };
}
