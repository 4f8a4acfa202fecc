/**
 * `EventSource` with the WHATWG interface, over `fetch`: headers (a token callback), retries that
 * back off and honour `Retry-After`, stall detection, one shared connection per browser profile
 * and URL, and typed, parsed events.
 */
import { Connection, type HeadersOption } from './connection.js';
import type { EventMap } from '../event-map.js';
import { share, type Member } from './share.js';

/** The untyped default: every event's data is the string the server sent. */
export type StringEvents = Record<string, string>;

export interface EventSourceOptions {
  /** Send cookies cross-origin (the WHATWG option). Default false. */
  withCredentials?: boolean;
  /** Request headers, or a function (sync or async) called before every connection: a fresh token each time. */
  headers?: HeadersOption;
  /**
   * Share one connection among the instances of this browser profile that open the same URL
   * (Web Locks and BroadcastChannel; where they are missing, each instance connects). Default true.
   */
  share?: boolean;
  /** First reconnection delay in ms, until the server sends `retry`. Default 1000. */
  retry?: number;
  /** Longest delay between reconnection attempts, ms. Default 30000. */
  maxRetry?: number;
  /** No byte for this long (ms) and the connection counts as dead: it reconnects. Default 35000 (past two 15 s keep-alives); 0: never. */
  stallTimeout?: number;
  /** Parse every event's data as JSON (what a typed hub sends). Default false: data is the string sent. */
  json?: boolean;
  /** The `fetch` to use. Default: the global one. */
  fetch?: typeof fetch;
}

/** The `error` event: `status` is the HTTP status when there was an answer (503, 401, 204…). */
export class SseErrorEvent extends Event {
  constructor(
    readonly status: number | undefined,
    readonly message: string,
  ) {
    super('error');
  }
}

type Listener<E extends Event> = ((this: EventSource, event: E) => unknown) | { handleEvent(event: E): unknown } | null;

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

type Handler = EventListener & { handler: (event: Event) => unknown };

export class EventSource<Events extends EventMap = StringEvents> extends EventTarget {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSED = CLOSED;
  readonly url: string;
  readonly withCredentials: boolean;
  #state: 0 | 1 | 2 = CONNECTING;
  #lastEventId = '';
  #connection: Connection | undefined;
  #leave: (() => void) | undefined;
  readonly #handlers: Record<string, Handler | undefined> = {};

  constructor(url: string | URL, ...[options = {}]: Events extends StringEvents ? [EventSourceOptions?] : [EventSourceOptions & { json: true }]) {
    super();
    try {
      this.url = new URL(url, (globalThis as { location?: { href: string } }).location?.href).href;
    } catch {
      throw new SyntaxError(`serve-sse/client: ${JSON.stringify(String(url))} is not a URL this page can open`);
    }
    this.withCredentials = options.withCredentials === true;
    const { headers, maxRetry = 30_000, stallTimeout = 35_000, json = false, fetch: fetchWith } = options;
    let retry = options.retry ?? 1000;
    // Nothing heard yet: a group's holder may tell it where the stream stands.
    let fresh = true;
    const self = this;
    // What a connection (its own, or the group's while it holds it) reports, and how one is made.
    const member: Member = {
      get lastEventId() {
        return self.#lastEventId;
      },
      settings: () => ({
        url: this.url,
        withCredentials: this.withCredentials,
        headers,
        retry,
        maxRetry,
        stallTimeout,
        fetch: fetchWith ?? ((input, init) => fetch(input, init)),
      }),
      opened: () => {
        fresh = false;
        if (this.#state !== CONNECTING) return;
        this.#state = OPEN;
        this.dispatchEvent(new Event('open'));
      },
      dispatched: ({ type, data, id }, origin) => {
        if (this.#state === CLOSED) return;
        this.#lastEventId = id;
        fresh = false;
        if (data === '') return;
        let value: unknown = data.slice(0, -1);
        if (json) {
          try {
            value = JSON.parse(value as string);
          } catch {
            this.dispatchEvent(new SseErrorEvent(undefined, `serve-sse/client: the data of a ${JSON.stringify(type)} event is not JSON`));
            return;
          }
        }
        this.dispatchEvent(new MessageEvent(type, { data: value, origin, lastEventId: id }));
      },
      retried: (ms) => {
        retry = ms;
      },
      failed: (status, final) => {
        if (this.#state === CLOSED) return;
        if (final) this.close();
        else this.#state = CONNECTING;
        const why = status === undefined ? 'the connection failed' : `the server answered ${status}`;
        this.dispatchEvent(new SseErrorEvent(status, `serve-sse/client: ${why}; ${final ? 'closed' : 'reconnecting'}`));
      },
      synced: (lastEventId, ms, origin) => {
        // Events the holder posted before its answer may have come first: they are newer.
        if (fresh) {
          this.#lastEventId = lastEventId;
          retry = ms;
        }
        if (origin !== undefined) member.opened(origin);
      },
    };
    const key = `serve-sse ${this.withCredentials ? 'credentials' : 'anonymous'} ${this.url}`;
    this.#leave = options.share === false ? undefined : share(key, member);
    if (this.#leave === undefined) this.#connection = new Connection(member.settings(), member);
  }

  get readyState(): 0 | 1 | 2 {
    return this.#state;
  }

  /** The last event ID string: what a reconnection sends as `Last-Event-ID`. */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  get onopen(): Listener<Event> {
    return this.#handler('open');
  }
  set onopen(handler: Listener<Event>) {
    this.#setHandler('open', handler);
  }
  get onmessage(): Listener<MessageEvent<Events['message']>> {
    return this.#handler('message');
  }
  set onmessage(handler: Listener<MessageEvent<Events['message']>>) {
    this.#setHandler('message', handler);
  }
  get onerror(): Listener<SseErrorEvent> {
    return this.#handler('error');
  }
  set onerror(handler: Listener<SseErrorEvent>) {
    this.#setHandler('error', handler);
  }

  override addEventListener<K extends keyof Events & string>(type: K, listener: Listener<MessageEvent<Events[K]>>, options?: boolean | AddEventListenerOptions): void;
  override addEventListener(type: 'open', listener: Listener<Event>, options?: boolean | AddEventListenerOptions): void;
  override addEventListener(type: 'error', listener: Listener<SseErrorEvent>, options?: boolean | AddEventListenerOptions): void;
  override addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  override addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void {
    super.addEventListener(type, listener, options);
  }

  override removeEventListener<K extends keyof Events & string>(type: K, listener: Listener<MessageEvent<Events[K]>>, options?: boolean | EventListenerOptions): void;
  override removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
  override removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void {
    super.removeEventListener(type, listener, options);
  }

  close(): void {
    this.#state = CLOSED;
    this.#connection?.stop();
    this.#leave?.();
    this.#connection = this.#leave = undefined;
  }

  #handler<E extends Event>(type: string): Listener<E> {
    return (this.#handlers[type]?.handler as Listener<E> | undefined) ?? null;
  }

  /**
   * An event handler attribute (WHATWG): one listener, registered when first set; a new function
   * takes its place in the listener order, and only null (or a non-function) removes it.
   */
  #setHandler<E extends Event>(type: string, handler: Listener<E>): void {
    const current = this.#handlers[type];
    if (typeof handler !== 'function') {
      if (current !== undefined) super.removeEventListener(type, current);
      this.#handlers[type] = undefined;
      return;
    }
    if (current !== undefined) {
      current.handler = handler as (event: Event) => unknown;
      return;
    }
    const wrapper: Handler = Object.assign((event: Event) => wrapper.handler.call(this, event), { handler: handler as (event: Event) => unknown });
    this.#handlers[type] = wrapper;
    super.addEventListener(type, wrapper);
  }
}
