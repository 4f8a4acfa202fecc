import { formatComment, formatEvent, type SseEvent } from './format.js';
import { dueForComment, type Heartbeat, type HeartbeatMember } from './heartbeat.js';
import type { SlowMember, SlowWatch } from './slow-clients.js';
import { Payload } from './transports/payload.js';
import type { Sink, SinkOwner } from './transports/sink.js';

/** What the application received: a Node request (HTTP/1 or the HTTP/2 compat API) or a Fetch `Request`. */
export type SseRequest = import('node:http').IncomingMessage | import('node:http2').Http2ServerRequest | Request;

/** What happens when a client's unsent bytes pass `highWaterMark`. */
export type SlowClientPolicy = 'wait' | 'drop' | 'close';

/**
 * One open event stream to one client. `Req` is the request's type as the app sees it (an Express
 * `Request`, say): see {@link StreamWriter}.
 */
export interface SseStream<Req extends SseRequest = SseRequest> {
  /** The request that opened the stream. */
  readonly request: Req;
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
  /** Unsent bytes at which a client counts as slow at once, whatever the time. */
  readonly maxBuffered: number;
  /** Watches the streams over their mark, and says when one has been so for too long. */
  readonly slowWatch: SlowWatch;
  /** Undefined without keep-alive; its tick count stamps every write. */
  readonly heartbeat: Heartbeat | undefined;
  /** Called once when a connection ends, whatever ended it. */
  readonly leaveHeartbeat: ((connection: SseConnection) => void) | undefined;
}

/** Told once when a stream closes; an object rather than a closure, so it can be the subscriber itself. */
export interface CloseObserver {
  /** `slow`: the stream was cut because its client was too slow (see the slow-client rule). */
  streamClosed(slow: boolean): void;
}

/** What became of an offered chunk: `evicted` means this write found the client too slow and closed it. */
export type Delivery = 'written' | 'dropped' | 'evicted' | 'closed';

/** Bytes for the client that wait until it has taken what it has: a replay, and what follows it. */
interface Backlog {
  readonly items: Array<string | Uint8Array | Payload>;
  /** The first item not written yet. */
  next: number;
  /** Bytes of items that were offered live: they count towards `maxBuffered`. A replay does not. */
  live: number;
}

const RESOLVED: Promise<void> = Promise.resolve();
/** The keep-alive comment: one Payload for every stream, framed once, not a string framed per write. */
const HEARTBEAT = new Payload(new TextEncoder().encode(':\n\n'));

/**
 * The stream implementation, independent of the transport: it owns the protocol, the
 * slow-client policy and the lifecycle; the sink only moves bytes.
 *
 * The slow-client rule: a write that finds more than `highWaterMark` bytes unsent is still made
 * (a burst is not a slow client); the stream is then watched, and if it stays over the mark for
 * `slowClientTimeout`, or a write finds more than `maxBuffered` unsent, the policy applies:
 * `"close"` and `"wait"` cut the connection, `"drop"` skips events until the client is back under
 * the mark. Unsent bytes only shrink between writes, so looking at them before every write and on
 * every tick of the watch sees any moment the client was back under the mark.
 */
export class SseConnection implements SseStream, HeartbeatMember, SlowMember, SinkOwner {
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
  /** The heartbeat tick of the last write: only streams silent for an interval get a comment. */
  #wroteAt = 0;
  /** When the unsent bytes were first seen over the mark (performance.now()); undefined when under it. */
  #overSince: number | undefined;
  /** `"drop"` found the client slow: events are skipped until it is back under the mark. */
  #dropping = false;
  /** Written as the client takes what it has, ahead of anything offered meanwhile. */
  #backlog: Backlog | undefined;
  /** `send` promises waiting for the client to catch up (`"wait"` only). */
  #waiting: Array<() => void> | undefined;
  #sinkGone = false;
  #gone: Promise<void> | undefined;
  #onGone: (() => void) | undefined;

  constructor(request: SseRequest, lastEventId: string | undefined, settings: StreamSettings) {
    this.request = request;
    this.lastEventId = lastEventId;
    this.#settings = settings;
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
    if (this.#closed) observer.streamClosed(false);
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

  /**
   * Writes `last` straight away, ahead of any backlog and past the slow-client policy (a retry
   * hint at shutdown: the client should get it even mid-replay), then ends the stream.
   */
  end(last: string | Payload): void {
    if (this.#closed) return;
    this.#sink.write(last);
    this.close();
  }

  /** The transport saw the client go away (or the response finish). */
  gone(): void {
    this.#finish();
    this.#sinkGone = true;
    this.#onGone?.();
  }

  heartbeat(ticks: number): void {
    if (dueForComment(this.#wroteAt, ticks)) this.offer(HEARTBEAT);
  }

  /**
   * Writes through the slow-client policy, without making a promise: the hub's fan-out path, and
   * under `send`, `comment` and `write`. Every byte the stream sends goes through here or
   * {@link queue}.
   */
  offer(chunk: string | Uint8Array | Payload): Delivery {
    if (this.#closed) return 'closed';
    if (this.#backlog !== undefined) return this.#enqueue(this.#backlog, chunk);
    const settings = this.#settings;
    // Unsent bytes only shrink between writes, and every write that leaves them over the mark
    // starts the watch: a stream not watched is under its mark, and needs no look (one read of
    // the socket's state per delivery saved, at tens of thousands of deliveries per event).
    if (this.#overSince !== undefined) {
      const buffered = this.#sink.buffered;
      if (buffered > settings.highWaterMark) {
        if (this.#dropping) return this.#drop();
        if (buffered > settings.maxBuffered) return this.#slow();
      } else {
        this.#drained();
      }
    }
    return this.#write(chunk, settings.onSlowClient === 'wait') ? 'written' : 'closed';
  }

  /**
   * Writes `chunks` as the client takes them, ahead of anything offered after: a replay. They are
   * written while the client is under its mark and the rest waits for it to drain, so a client
   * that reads nothing holds at most the mark plus one chunk, and is cut like any slow client.
   * Chunks should be shared (a hub's history): they are kept by reference, never copied.
   */
  queue(chunks: ReadonlyArray<string | Uint8Array | Payload>): void {
    if (this.#closed || chunks.length === 0) return;
    if (this.#backlog === undefined) this.#backlog = { items: [...chunks], next: 0, live: 0 };
    else this.#backlog.items.push(...chunks);
    this.#pump();
  }

  /** Whether the transport is really done (the socket closed), not just the stream. */
  get isGone(): boolean {
    return this.#sinkGone;
  }

  /** Cuts the connection without ending the response cleanly: for a client that reads nothing. */
  destroy(): void {
    this.#finish(false);
    this.#sink.destroy();
  }

  /** Resolves once the transport is really done (the socket closed), not just the stream. */
  whenGone(): Promise<void> {
    this.#gone ??= this.#sinkGone ? RESOLVED : new Promise((resolve) => (this.#onGone = resolve));
    return this.#gone;
  }

  /** The sink flushed bytes written with `notify`: a waiting `send`, or the backlog, may go on. */
  flushed(): void {
    if (this.#closed) {
      this.#releaseWaiting();
      return;
    }
    if (this.#sink.buffered > this.#settings.highWaterMark) return;
    if (this.#overSince !== undefined || this.#dropping) this.#drained();
    this.#releaseWaiting();
    if (this.#backlog !== undefined) this.#pump();
  }

  /** The slow-client watch's tick, while the stream is over its mark. */
  checkSlow(now: number): boolean {
    if (this.#closed) return false;
    if (this.#sink.buffered <= this.#settings.highWaterMark) {
      this.#overSince = undefined;
      this.#dropping = false;
      // Bytes waiting behind the mark can go now; the 'drained' notice may not have come.
      if (this.#backlog !== undefined) this.#pump();
      return this.#overSince !== undefined;
    }
    if (!this.#dropping && this.#overSince !== undefined && now - this.#overSince >= this.#settings.slowWatch.timeoutMs) {
      this.#slow();
      return !this.#closed;
    }
    return true;
  }

  #push(chunk: string | Uint8Array): Promise<void> {
    if (this.offer(chunk) !== 'written' || this.#settings.onSlowClient !== 'wait' || this.#sink.buffered <= this.#settings.highWaterMark) {
      return RESOLVED;
    }
    return new Promise((resolve) => (this.#waiting ??= []).push(resolve));
  }

  /** One write to the sink; starts watching the stream if the write left it over its mark. */
  #write(chunk: string | Uint8Array | Payload, notify: boolean): boolean {
    const sink = this.#sink;
    if (!sink.write(chunk, notify)) return false;
    this.#wroteAt = this.#settings.heartbeat?.ticks ?? 0;
    if (this.#overSince === undefined && sink.over(this.#settings.highWaterMark)) this.#watch();
    return true;
  }

  /** Over the mark from now on (unless it was already): the slow-client watch keeps the time. */
  #watch(): void {
    if (this.#overSince !== undefined) return;
    this.#overSince = performance.now();
    this.#settings.slowWatch.add(this);
  }

  /** Writes backlog items while the client is under its mark; asks to hear when it drains. */
  #pump(): void {
    const backlog = this.#backlog!;
    const sink = this.#sink;
    const { highWaterMark } = this.#settings;
    // Corked, the chunks of one round leave in one system call (writev), still without a copy.
    sink.cork();
    let wrote = false;
    while (backlog.next < backlog.items.length && sink.buffered <= highWaterMark) {
      const item = backlog.items[backlog.next]!;
      backlog.items[backlog.next++] = EMPTY;
      const last = backlog.next === backlog.items.length || sink.buffered + sizeOf(item) > highWaterMark;
      if (!this.#write(item, last)) break;
      wrote = true;
    }
    sink.uncork();
    if (this.#closed) return;
    if (backlog.next === backlog.items.length) {
      this.#backlog = undefined;
      // A "wait" writer held back by the backlog may go on.
      if (sink.buffered <= highWaterMark) this.#releaseWaiting();
    } else if (!wrote) {
      // Nothing could be written and nothing will say when to try again: the watch will.
      this.#watch();
    }
  }

  /** Offered while a backlog waits: behind it, counted towards the cap. */
  #enqueue(backlog: Backlog, chunk: string | Uint8Array | Payload): Delivery {
    const settings = this.#settings;
    const size = sizeOf(chunk);
    if (this.#dropping) return this.#drop();
    if (this.#sink.buffered + backlog.live + size > settings.maxBuffered) return this.#slow();
    backlog.items.push(chunk);
    backlog.live += size;
    return 'written';
  }

  /** Back under the mark. */
  #drained(): void {
    this.#overSince = undefined;
    this.#dropping = false;
    this.#settings.slowWatch.delete(this);
  }

  #drop(): Delivery {
    this.#dropped++;
    return 'dropped';
  }

  /** The client is slow: the policy applies. */
  #slow(): Delivery {
    if (this.#settings.onSlowClient === 'drop') {
      this.#dropping = true;
      // Watched until it is back under the mark, which ends the dropping.
      this.#watch();
      return this.#drop();
    }
    // Ending cleanly would queue the end behind bytes the client is not reading; only
    // dropping the connection frees them. The client reconnects and resumes from its last id.
    this.#finish(true);
    this.#sink.destroy();
    return 'evicted';
  }

  #releaseWaiting(): void {
    const waiting = this.#waiting;
    if (waiting === undefined) return;
    this.#waiting = undefined;
    for (const resolve of waiting) resolve();
  }

  /** Marks the stream closed exactly once; returns whether this call did it. */
  #finish(slow = false): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    this.#backlog = undefined;
    if (this.#overSince !== undefined) this.#settings.slowWatch.delete(this);
    this.#releaseWaiting();
    this.#settings.leaveHeartbeat?.(this);
    const observers = this.#observers;
    this.#observers = undefined;
    if (Array.isArray(observers)) for (const observer of observers) observer.streamClosed(slow);
    else observers?.streamClosed(slow);
    this.#abort?.abort();
    return true;
  }
}

/** What a written backlog slot holds, so that the bytes it had can be collected at once. */
const EMPTY = '';

/** Bytes a chunk takes in the sink's buffer (strings: their length, close enough for a bound). */
function sizeOf(chunk: string | Uint8Array | Payload): number {
  return typeof chunk === 'string' ? chunk.length : chunk instanceof Payload ? chunk.bytes.byteLength : chunk.byteLength;
}
