import { formatComment, formatEvent, type SseEvent } from './format.js';
import type { HeartbeatMember } from './heartbeat.js';
import type { Payload } from './transports/payload.js';
import type { Sink, SinkOwner } from './transports/sink.js';

/** What the application received: a Node request (HTTP/1 or the HTTP/2 compat API) or a Fetch `Request`. */
export type SseRequest = import('node:http').IncomingMessage | import('node:http2').Http2ServerRequest | Request;

/** What happens when a client's unsent bytes pass `highWaterMark`. */
export type SlowClientPolicy = 'wait' | 'drop' | 'close';

/** One open event stream to one client. */
export interface SseStream {
  /** The request that opened the stream. */
  readonly request: SseRequest;
  /** The `Last-Event-ID` the client sent (or its `lastEventId` query parameter), if valid. */
  readonly lastEventId: string | undefined;
  /** Aborted when the client goes away or the stream closes, for whatever reason. */
  readonly signal: AbortSignal;
  readonly closed: boolean;
  /** Events dropped so far by `onSlowClient: "drop"`. */
  readonly dropped: number;
  /**
   * Sends one event. Resolves once the bytes are accepted; with `onSlowClient: "wait"` it waits
   * while the client is over its buffer limit. Resolves without writing on a closed stream;
   * rejects with a `TypeError` for an invalid event (the stream stays usable).
   */
  send(event: SseEvent): Promise<void>;
  /** Sends a comment, which clients ignore (a heartbeat, or a note for someone reading the stream). */
  comment(text?: string): Promise<void>;
  /** Writes raw protocol text: correctness is the caller's job. */
  write(raw: string | Uint8Array): Promise<void>;
  /** Ends the stream cleanly; the client reconnects after its retry delay. */
  close(): void;
}

/** Sends `data` as an event of type `event`. */
export function sendEvent(stream: SseStream, event: string, data: unknown): Promise<void> {
  return stream.send({ event, data });
}

/** How a handler's connections behave: one object shared by all of them, not copied into each. */
export interface StreamSettings {
  readonly highWaterMark: number;
  readonly onSlowClient: SlowClientPolicy;
  /** Called once when a connection ends, whatever ended it. */
  readonly leaveHeartbeat: ((connection: SseConnection) => void) | undefined;
}

/** Told once when a stream closes; an object rather than a closure, so it can be the subscriber itself. */
export interface CloseObserver {
  streamClosed(): void;
}

/** What became of an offered chunk: `evicted` means this write found the client too slow and closed it. */
export type Delivery = 'written' | 'dropped' | 'evicted' | 'closed';

const RESOLVED: Promise<void> = Promise.resolve();
const HEARTBEAT = ':\n\n';

/**
 * The stream implementation, independent of the transport: it owns the protocol, the
 * slow-client policy and the lifecycle; the sink only moves bytes.
 */
export class SseConnection implements SseStream, HeartbeatMember, SinkOwner {
  readonly request: SseRequest;
  readonly lastEventId: string | undefined;
  #sink!: Sink;
  /** Made on first use of `signal`: an AbortController is an EventTarget, heavy at 50,000 idle streams. */
  #abort: AbortController | undefined;
  readonly #settings: StreamSettings;
  /** Internal observers (a hub subscription), cheaper than abort listeners; rarely more than one. */
  #observers: CloseObserver | CloseObserver[] | undefined;
  #closed = false;
  #dropped = 0;
  /** Set by every write, cleared by the heartbeat: only idle streams get keep-alive comments. */
  #wroteSinceBeat = false;
  /** `send` promises waiting for the client to catch up (`"wait"` only). */
  #waiting: Array<() => void> | undefined;
  /** Buffered bytes allowed before the policy applies: the high-water mark, stretched by a replay. */
  #limit: number;
  #sinkGone = false;
  #gone: Promise<void> | undefined;
  #onGone: (() => void) | undefined;

  constructor(request: SseRequest, lastEventId: string | undefined, settings: StreamSettings) {
    this.request = request;
    this.lastEventId = lastEventId;
    this.#settings = settings;
    this.#limit = settings.highWaterMark;
  }

  /** Connects the transport. Separate from the constructor because the sink reports back to us. */
  attach(sink: Sink): this {
    this.#sink = sink;
    return this;
  }

  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      this.#abort = new AbortController();
      if (this.#closed) this.#abort.abort();
    }
    return this.#abort.signal;
  }

  /** Tells `observer` once when the stream closes (at once if it has). */
  onClosed(observer: CloseObserver): void {
    const observers = this.#observers;
    if (this.#closed) observer.streamClosed();
    else if (observers === undefined) this.#observers = observer;
    else if (Array.isArray(observers)) observers.push(observer);
    else this.#observers = [observers, observer];
  }

  get closed(): boolean {
    return this.#closed;
  }

  get dropped(): number {
    return this.#dropped;
  }

  send(event: SseEvent): Promise<void> {
    if (this.#closed) return RESOLVED;
    let text: string;
    try {
      text = formatEvent(event);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#push(text);
  }

  comment(text = ''): Promise<void> {
    if (this.#closed) return RESOLVED;
    if (typeof text !== 'string') {
      return Promise.reject(new TypeError('serve-sse: stream.comment(text) takes a string'));
    }
    return this.#push(`${formatComment(text)}\n`);
  }

  write(raw: string | Uint8Array): Promise<void> {
    if (this.#closed) return RESOLVED;
    if (typeof raw !== 'string' && !(raw instanceof Uint8Array)) {
      return Promise.reject(new TypeError('serve-sse: stream.write(raw) takes a string or a Uint8Array'));
    }
    return this.#push(raw);
  }

  close(): void {
    if (this.#finish()) this.#sink.end();
  }

  /** The transport saw the client go away (or the response finish). */
  gone(): void {
    this.#finish();
    this.#sinkGone = true;
    this.#onGone?.();
  }

  heartbeat(): void {
    if (this.#wroteSinceBeat) {
      this.#wroteSinceBeat = false;
    } else {
      this.offer(HEARTBEAT);
    }
  }

  /**
   * Writes through the slow-client policy, without making a promise: the hub's fan-out path, and
   * under `send`, `comment` and `write`. Every byte the stream sends goes through here.
   */
  offer(chunk: string | Uint8Array | Payload): Delivery {
    if (this.#closed) return 'closed';
    const sink = this.#sink;
    const buffered = sink.buffered;
    if (buffered <= this.#settings.highWaterMark) {
      this.#limit = this.#settings.highWaterMark;
    } else if (this.#settings.onSlowClient !== 'wait' && buffered > this.#limit) {
      if (this.#settings.onSlowClient === 'drop') {
        this.#dropped++;
        return 'dropped';
      }
      // Ending cleanly would queue the end behind bytes the client is not reading; only
      // dropping the connection frees them. The client reconnects and resumes from its last id.
      if (this.#finish()) sink.destroy();
      return 'evicted';
    }
    if (!sink.write(chunk, this.#settings.onSlowClient === 'wait')) return 'closed';
    this.#wroteSinceBeat = true;
    return 'written';
  }

  /**
   * Writes a replay: past the limit if need be, since the client asked for exactly these bytes
   * (and the hub shares them with its history). The limit stretches until the client has caught
   * up, so live events right after a long replay do not count it as slow.
   */
  offerReplay(chunk: Payload): void {
    if (this.#closed) return;
    this.#sink.write(chunk);
    this.#wroteSinceBeat = true;
    this.#limit = Math.max(this.#limit, this.#sink.buffered + this.#settings.highWaterMark);
  }

  /** Whether the transport is really done (the socket closed), not just the stream. */
  get isGone(): boolean {
    return this.#sinkGone;
  }

  /** Cuts the connection without ending the response cleanly: for a client that reads nothing. */
  destroy(): void {
    this.#finish();
    this.#sink.destroy();
  }

  /** Resolves once the transport is really done (the socket closed), not just the stream. */
  whenGone(): Promise<void> {
    this.#gone ??= this.#sinkGone ? RESOLVED : new Promise((resolve) => (this.#onGone = resolve));
    return this.#gone;
  }

  #push(chunk: string | Uint8Array): Promise<void> {
    if (this.offer(chunk) !== 'written' || this.#settings.onSlowClient !== 'wait' || this.#sink.buffered <= this.#settings.highWaterMark) {
      return RESOLVED;
    }
    return new Promise((resolve) => (this.#waiting ??= []).push(resolve));
  }

  /** The sink flushed bytes written under `"wait"`. */
  flushed(): void {
    if (this.#waiting !== undefined && (this.#closed || this.#sink.buffered <= this.#settings.highWaterMark)) {
      this.#releaseWaiting();
    }
  }

  #releaseWaiting(): void {
    const waiting = this.#waiting;
    if (waiting === undefined) return;
    this.#waiting = undefined;
    for (const resolve of waiting) resolve();
  }

  /** Marks the stream closed exactly once; returns whether this call did it. */
  #finish(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    this.#releaseWaiting();
    this.#settings.leaveHeartbeat?.(this);
    const observers = this.#observers;
    this.#observers = undefined;
    if (Array.isArray(observers)) for (const observer of observers) observer.streamClosed();
    else observers?.streamClosed();
    this.#abort?.abort();
    return true;
  }
}
