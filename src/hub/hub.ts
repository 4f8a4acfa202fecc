import type { Backplane, LogEntry, LogListener } from '../backplanes/backplane.js';
import { memoryBackplane } from '../backplanes/memory.js';
import { acceptStream, type ConnectResult } from '../connect.js';
import { isThenable } from '../thenable.js';
import type { EventMap, TypedEvent } from '../event-map.js';
import { formatEvent, formatRetry, type SseEvent } from '../format.js';
import { consoleLogger, type Logger } from '../logger.js';
import { createSseHandler, resolveSettings, type ServeSseOptions, type SseHandler } from '../serve.js';
import type { SseConnection, SseRequest, SseStream } from '../stream.js';
import { Payload } from '../transports/payload.js';
import { isLogId } from '../backplanes/log-id.js';
import { CatchUp, type Waiter } from './catch-up.js';
import { FanOut, Subscriber, type Extra } from './fanout.js';
import { History, type HistoryEntry, type Since } from './history.js';
import type { Interest } from './interest.js';
import { queryTopics } from './query-topics.js';

export interface HubOptions {
  /** Events kept for replay. Default 1 000; 0 keeps none. */
  history?: number;
  /** Milliseconds an event stays replayable. Default: no age limit. */
  historyMaxAge?: number;
  /** Default for the hub's handlers. Default 15 000. */
  keepAlive?: number | false;
  /** Default for the hub's handlers: unsent bytes per client above which it is watched (see `serveSse`). Default 65 536. */
  highWaterMark?: number;
  /** Default for the hub's handlers: ms a client may stay over `highWaterMark` before it is slow. Default 10 000. */
  slowClientTimeout?: number;
  /** Default for the hub's handlers: unsent bytes at which a client is slow at once. Default 2 MiB. */
  maxBuffered?: number;
  /** `"close"` (default): a slow client is disconnected and resumes from its last id. `"drop"`: it misses events. */
  onSlowClient?: 'drop' | 'close';
  /** Event type sent to a client whose `Last-Event-ID` the hub cannot replay from. Default `"reset"`. */
  resetEvent?: string;
  /**
   * Milliseconds a client whose `Last-Event-ID` this instance has not heard yet (it lags behind
   * the backplane's log) waits for it to catch up; past it, the stream ends and the client comes
   * back with the same id. Default 10 000.
   */
  catchUpTimeout?: number;
  /**
   * The log that instances of this hub share: ids, order and history come from it. Default: in
   * memory, this process only. `redisBackplane()` from `serve-sse/redis` spans processes.
   */
  backplane?: Backplane;
  /**
   * Send every event's data as JSON, strings included, so that a client parsing JSON
   * (`serve-sse/client`'s `json: true`) reads back exactly what was published. A typed hub
   * (`createHub<Events>({ json: true })`) needs it. Default false: a string goes as it is.
   */
  json?: boolean;
  logger?: Logger;
}

export interface HubStats {
  /** Open subscriptions, {@link waiting} ones included. */
  connections: number;
  /**
   * Subscriptions not joined yet: waiting for the backplane to load the shared history, or for
   * this instance to catch up with their `Last-Event-ID` (see `catchUpTimeout`).
   */
  waiting: number;
  /** Topics with at least one subscriber. */
  topics: number;
  published: number;
  /** Events written to clients, replays included. */
  delivered: number;
  /** Events skipped for slow clients (`onSlowClient: "drop"`). */
  dropped: number;
  /** Slow clients disconnected (`onSlowClient: "close"`). */
  evicted: number;
  /** Events written as replay after a `Last-Event-ID`. */
  replayed: number;
  /** Reset events sent: for ids the hub could not replay from, and to live clients after a gap. */
  resets: number;
  /** Times the backplane lost events this instance could not hear (see `Backplane`). */
  gaps: number;
  /** Events held for replay. */
  history: number;
  /** Whether the backplane accepts publications. */
  backplaneConnected: boolean;
  /** Milliseconds from an event entering the log to this instance hearing it: the latest seen. */
  backplaneLag: number;
}

export interface Subscription {
  readonly topics: readonly string[];
  unsubscribe(): void;
}

/** `Req`: the request type, as for `serveSse` (inferred from where the handler goes). */
export interface HubHandlerOptions<Req extends SseRequest = SseRequest> extends ServeSseOptions<Req> {
  /**
   * The topics a request subscribes to, decided after `onConnect` accepted it; none answers 204,
   * which tells the client to stop reconnecting. Default: the request's `topic` query parameters.
   */
  topics?: (request: Req) => string[] | Promise<string[]>;
}

export interface PublishOptions {
  /**
   * The event's id on the wire, chosen by its publisher (Mercure publishers choose theirs):
   * clients resume by it on any instance, and a duplicate resolves to its earliest event. The
   * log's order stays the hub's. No CR, LF or NUL; at most 1,024 characters. Default: the log's id.
   */
  id?: string;
  /** Only subscribers whose {@link Interest.access} allows one of the event's topics receive it. */
  private?: boolean;
}

export interface SubscribeOptions {
  /** The id to resume after, instead of `stream.lastEventId` (a protocol with its own parameter). */
  after?: string;
  /** Replays every event the history holds for the subscription (Mercure's `earliest`). */
  fromEarliest?: boolean;
}

export interface Hub {
  /**
   * Sends an event to every subscriber of any of `topics`, once each; resolves with its id on the
   * wire (the log's, or `options.id`).
   */
  publish(topics: string | string[], event: SseEvent, options?: PublishOptions): Promise<string>;
  /**
   * Subscribes a stream to topic names, or to an {@link Interest} (names, matchers, private
   * access), replaying what it missed after `stream.lastEventId` (or `options.after`) first.
   * After `close()`, ends the stream instead.
   */
  subscribe(stream: SseStream, topics: string[] | Interest, options?: SubscribeOptions): Subscription;
  /** An SSE handler whose connections subscribe to the hub. */
  handler<Req extends SseRequest = SseRequest>(options?: HubHandlerOptions<Req>): SseHandler<Req>;
  stats(): HubStats;
  /** Sends `retry` (if given) to every client, ends every stream, and resolves once they are gone. */
  close(options?: HubCloseOptions): Promise<void>;
}

export interface HubCloseOptions {
  /** Reconnection delay (ms) sent to every client before its stream ends. */
  retry?: number;
  /**
   * Spreads reconnections: each client is told `retry` plus a random share of this many ms, so
   * that ten thousand clients do not come back in the same instant. Default 0.
   */
  retryJitter?: number;
  /** Milliseconds to wait for clients to go before their connections are cut. Default 5000. */
  timeout?: number;
}

/** The `data` of a reset event: the app should refetch its state, then carry on with live events. */
export interface ResetData {
  /** The client's last id before what it missed. */
  lastEventId: string;
  /**
   * `unknown`: not an id of this hub (another process, a restart). `expired`: history moved past
   * it, or the backplane lost events. `dropped`: the client was too slow and events were skipped
   * for it (`onSlowClient: "drop"`).
   */
  reason: 'unknown' | 'expired' | 'dropped';
}

const encoder = new TextEncoder();

/**
 * Internal, for protocols built on a hub (not in the public index): what a protocol needs that
 * a plain subscription does not, reached through this symbol on the hub object.
 */
export const HUB_INTERNALS: unique symbol = Symbol.for('serve-sse.hubInternals');

export interface HubInternals {
  /**
   * Resolves once this instance has heard `lastEventId` (or knows it never will), within the
   * hub's `catchUpTimeout`: a protocol that must answer with the resume point in its response
   * head (Mercure's `Last-Event-ID` header) waits for a lagging instance first.
   */
  caughtUp(lastEventId: string): Promise<void>;
  /**
   * The id of the event a replay after `lastEventId` starts from, if a subscriber of `interest`
   * may see it, else of the most recent one before it that it may; undefined when there is none to
   * name (Mercure's `Last-Event-ID` response header).
   */
  anchor(lastEventId: string | undefined, interest: Interest): string | undefined;
  /** The id on the wire of the newest event this instance has heard, if any. */
  lastEventId(): string | undefined;
}

/** A hub whose events are checked against an {@link EventMap}: `publish` takes only events of its types, with data of their type. */
export interface TypedHub<Events extends EventMap> extends Omit<Hub, 'publish'> {
  publish(topics: string | string[], event: TypedEvent<Events>, options?: PublishOptions): Promise<string>;
}

/** A hub: in memory, or over a backplane that several processes share. */
export function createHub(options?: HubOptions): Hub;
/** A typed hub: its events' data goes as JSON, and `publish` checks types and data against `Events`. */
export function createHub<Events extends EventMap>(options: HubOptions & { json: true }): TypedHub<Events>;
export function createHub(options: HubOptions = {}): Hub {
  const {
    history: capacity = 1000,
    historyMaxAge,
    keepAlive,
    highWaterMark,
    slowClientTimeout,
    maxBuffered,
    onSlowClient = 'close',
    resetEvent = 'reset',
    catchUpTimeout = 10_000,
    backplane = memoryBackplane(),
    json = false,
    logger = consoleLogger,
  } = options;
  if (!Number.isSafeInteger(capacity) || capacity < 0) throw hubOptionError('history', 'a non-negative integer', capacity);
  if (historyMaxAge !== undefined && !(Number.isFinite(historyMaxAge) && historyMaxAge > 0)) {
    throw hubOptionError('historyMaxAge', 'a positive number of milliseconds', historyMaxAge);
  }
  if (onSlowClient !== 'drop' && onSlowClient !== 'close') {
    // A hub publishes to everyone at once: waiting for one client would hold up all of them.
    throw hubOptionError('onSlowClient', '"drop" or "close" (a hub cannot wait for one client)', onSlowClient);
  }
  if (typeof resetEvent !== 'string' || resetEvent === '' || /[\r\n]/.test(resetEvent)) {
    throw hubOptionError('resetEvent', 'a non-empty event type without CR or LF', resetEvent);
  }
  if (!(Number.isSafeInteger(catchUpTimeout) && catchUpTimeout > 0)) throw hubOptionError('catchUpTimeout', 'a positive number of milliseconds', catchUpTimeout);
  if (backplane === null || typeof backplane !== 'object' || typeof backplane.append !== 'function' || typeof backplane.open !== 'function') {
    throw hubOptionError('backplane', 'a backplane such as redisBackplane({ url })', backplane);
  }
  // The handlers' stream options, checked now rather than at the first handler() call.
  const streamDefaults = { keepAlive, highWaterMark, slowClientTimeout, maxBuffered, onSlowClient, logger };
  resolveSettings(streamDefaults);

  const history = new History(capacity, historyMaxAge, backplane.origin);
  const counts = { published: 0, delivered: 0, dropped: 0, evicted: 0, replayed: 0, resets: 0, gaps: 0 };
  const fanOut = new FanOut(
    (result, events) => {
      if (result === 'written') counts.delivered += events;
      else if (result === 'dropped') counts.dropped += events;
      else if (result === 'evicted') counts.evicted++;
    },
    (lastEventId, id) => {
      counts.resets++;
      return resetPayload({ lastEventId, reason: 'dropped' }, id);
    },
  );
  let closing = false;
  /** Local arrival order of log entries: the fan-out's cheap stand-in for ids. */
  let seq = 0;
  let lag = 0;
  /** After a gap, the last id heard before it: live clients get a reset with the next entry. */
  let gapAfter: string | undefined;
  /** Where a subscriber resumes when it is not `stream.lastEventId` (a protocol's own parameter, `earliest`). */
  const resumePoints = new WeakMap<Subscriber, string>();
  /**
   * When a subscriber with no resume point came while the backplane was loading the shared
   * history: it is owed what was published from then on, some of which the load brings.
   */
  const cameDuringLoad = new WeakMap<Subscriber, number>();

  const listener: LogListener = {
    receive(entry: LogEntry) {
      // The id line goes first so the rest is the body as published; field order means nothing to parsers.
      const payload = new Payload(encoder.encode(`id: ${entry.alias ?? entry.id}\n${entry.body}`));
      const received = { seq: ++seq, id: entry.id, topics: entry.topics, payload, time: entry.time, alias: entry.alias, private: entry.private };
      lag = Math.max(0, Date.now() - entry.time);
      if (gapAfter !== undefined) resetLiveClients(gapAfter, entry.id);
      gapAfter = undefined;
      history.add(received);
      fanOut.enqueue(received);
      // Clients that came with this id (or an earlier one) before this instance had heard it.
      catchUp.heard(entry.id);
    },
    lost() {
      logger.warn({}, 'serve-sse: the backplane lost events this instance had not read (trimmed while it lagged or was cut off, or Redis lost its data); older ids now get a reset');
      counts.gaps++;
      gapAfter ??= history.lastId ?? '';
      history.clear();
    },
  };
  const catchUp = new CatchUp(catchUpTimeout, (count) => {
    logger.warn({ clients: count, timeoutMs: catchUpTimeout }, 'serve-sse: clients waited too long for this instance to catch up with their Last-Event-ID; ending their streams so that they come back');
  });
  // Subscriptions wait while the backplane loads the shared history, so their replay sees it.
  let opening: Subscriber[] | undefined;
  const opened = backplane.open(listener, capacity);
  if (opened instanceof Promise) {
    opening = [];
    opened
      .catch((error: unknown) => logger.error(error, 'serve-sse: the backplane did not open; serving what this instance has'))
      .finally(() => {
        const queued = opening ?? [];
        opening = undefined;
        for (const subscriber of queued) if (subscriber.state === 'held') join(subscriber);
      });
  }

  /**
   * Connected clients missed what fell into the gap, so each gets a reset, ahead of the first
   * event after it: its id is that event's, so a client that reconnects right after resumes there.
   */
  function resetLiveClients(lastEventId: string, nextId: string): void {
    fanOut.flush();
    const reset = resetPayload({ lastEventId, reason: 'expired' }, nextId);
    for (const subscriber of fanOut.all()) {
      subscriber.queue([reset]);
      counts.resets++;
    }
  }

  function resetPayload(data: ResetData, id: string): Payload {
    return new Payload(encoder.encode(formatEvent({ event: resetEvent, id, data })));
  }

  function publish(topics: string | string[], event: SseEvent, options: PublishOptions = {}): Promise<string> {
    try {
      if (closing) throw new Error('serve-sse: the hub is closed; publish is refused');
      const list = checkTopics(typeof topics === 'string' ? [topics] : topics, 'publish');
      if (event?.id !== undefined) throw new TypeError('serve-sse: the hub assigns event ids; publish an event without `id` (a publisher\'s own id goes in the options: publish(topics, event, { id }))');
      const { id: alias, private: isPrivate } = checkPublishOptions(options);
      // Serialised once for the whole cluster: every instance prefixes the id and sends these bytes.
      const meta = alias === undefined && isPrivate !== true ? undefined : { alias, private: isPrivate === true };
      const appended = backplane.append(list, formatEvent(json ? { ...event, data: JSON.stringify(event.data) } : event), meta);
      return appended.then((id) => {
        counts.published++;
        return alias ?? id;
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  function replay(subscriber: Subscriber, lastEventId: string, since: Since): void {
    if (!since.known) {
      // The latest id moves the client forward, so its next reconnection is not reset again.
      const reason = since.reason === 'ahead' ? 'unknown' : since.reason;
      subscriber.lastId = history.lastId ?? '';
      subscriber.queue([resetPayload({ lastEventId, reason }, subscriber.lastId)]);
      counts.resets++;
      return;
    }
    replayEntries(subscriber, since.entries, lastEventId);
  }

  function replayEntries(subscriber: Subscriber, missed: HistoryEntry[], lastEventId: string): void {
    const last = missed.at(-1);
    subscriber.lastId = last === undefined ? lastEventId : (last.alias ?? last.id);
    if (missed.length === 0) return;
    // The history's own bytes, written as the client reads them: never a copy per client.
    subscriber.queue(missed.map((entry) => entry.payload));
    counts.replayed += missed.length;
    counts.delivered += missed.length;
  }

  function subscribe(stream: SseStream, topics: string[] | Interest, options: SubscribeOptions = {}): Subscription {
    const interest = Array.isArray(topics) ? { topics: checkTopics(topics, 'subscribe') } : checkInterest(topics);
    // A closed hub ends the stream rather than leave it open with nothing to come.
    if (closing) {
      stream.close();
      return { topics: interest.topics, unsubscribe: () => {} };
    }
    const subscriber = enter(stream, interest, options);
    return { topics: subscriber.topics, unsubscribe: () => subscriber.unsubscribe() };
  }

  /** Joins now, or once the backplane has loaded the shared history. */
  function enter(stream: SseStream, interest: Interest, options: SubscribeOptions = {}): Subscriber {
    const subscriber = new Subscriber(stream, fanOut.intern(interest.topics), fanOut, extraOf(interest));
    if (options.after !== undefined) resumePoints.set(subscriber, options.after);
    if (options.fromEarliest === true) resumePoints.set(subscriber, EARLIEST);
    // Watched from the start: a subscription held before it joins must not outlive its stream either.
    if (subscriber.connection !== undefined) subscriber.connection.onClosed(subscriber);
    else stream.signal.addEventListener('abort', subscriber, { once: true });
    if (stream.closed) return subscriber;
    if (opening !== undefined) {
      if (!resumePoints.has(subscriber) && stream.lastEventId === undefined) cameDuringLoad.set(subscriber, Date.now() - LOAD_CLOCK_SKEW_MS);
      fanOut.hold(subscriber);
      opening.push(subscriber);
    } else join(subscriber);
    return subscriber;
  }

  /**
   * Joins now, replaying first; or holds the subscriber until this instance has heard its id.
   * `mayWait`: false once it has waited (what is still unknown then is unknown).
   */
  function join(subscriber: Subscriber, mayWait = true): void {
    const { stream } = subscriber;
    if (stream.closed) return;
    // Everything received so far reaches it by replay or not at all; the rest, by fan-out.
    // Replay and registration happen in one synchronous step: no event can fall between them, and
    // none can arrive twice.
    subscriber.since = seq;
    const lastEventId = resumePoints.get(subscriber) ?? stream.lastEventId;
    if (lastEventId === EARLIEST) {
      resumePoints.delete(subscriber);
      replayEntries(subscriber, history.all(subscriber, Date.now()), '');
    } else if (lastEventId !== undefined) {
      const since = history.since(lastEventId, subscriber, Date.now());
      if (!since.known && mayWait && waitForId(lastEventId, since, subscriberWaiter(subscriber))) {
        fanOut.hold(subscriber);
        return;
      }
      resumePoints.delete(subscriber);
      replay(subscriber, lastEventId, since);
    } else {
      const came = cameDuringLoad.get(subscriber);
      if (came !== undefined) {
        cameDuringLoad.delete(subscriber);
        replayEntries(subscriber, history.stampedSince(came, subscriber, Date.now()), '');
      }
    }
    if (stream.closed) return;
    fanOut.add(subscriber);
  }

  /**
   * Whether `waiter` must wait for this instance to hear `lastEventId`, which it does not know:
   * a log id from its future (the backplane says it may lag), or an id a publisher chose that this
   * instance may not have heard yet (it waits until it has heard the log's newest entry as of now).
   */
  function waitForId(lastEventId: string, since: Since, waiter: Waiter): boolean {
    if (since.known) return false;
    if (since.reason === 'ahead') {
      if (backplane.mayBeAhead?.(lastEventId) !== true) return false;
      catchUp.wait(waiter, lastEventId);
      return true;
    }
    if (isLogId(lastEventId) || backplane.head === undefined) return false;
    askHead(waiter, Date.now() + catchUpTimeout);
    return true;
  }

  /** Asks the log for its newest id (again, while it cannot answer: cut off, say), then waits for it. */
  function askHead(waiter: Waiter, deadline: number): void {
    backplane.head!().then(
      (newest) => {
        if (!waiter.waiting) return;
        if (newest === undefined || history.reached(newest)) waiter.heard();
        else catchUp.wait(waiter, newest);
      },
      () => {
        if (!waiter.waiting) return;
        if (Date.now() >= deadline) waiter.timedOut();
        else setTimeout(askHead, HEAD_RETRY_MS, waiter, deadline);
      },
    );
  }

  /** A held subscription as a catch-up waiter: it joins when the id is heard, and ends if it never is. */
  function subscriberWaiter(subscriber: Subscriber): Waiter {
    return {
      get waiting() {
        return subscriber.state === 'held';
      },
      heard: () => join(subscriber, false),
      timedOut: () => subscriber.end(undefined),
    };
  }

  const internals: HubInternals = {
    caughtUp(lastEventId) {
      if (lastEventId === EARLIEST) return Promise.resolve();
      const since = history.since(lastEventId, NOTHING_WANTED, Date.now());
      return new Promise<void>((resolve) => {
        let waiting = true;
        const done = (): void => {
          waiting = false;
          resolve();
        };
        const waiter: Waiter = {
          get waiting() {
            return waiting && !closing;
          },
          heard: done,
          timedOut: done,
        };
        if (!waitForId(lastEventId, since, waiter)) done();
      });
    },
    lastEventId: () => history.lastWireId,
    anchor(lastEventId, interest) {
      const filter = new Subscriber(NO_STREAM, checkInterest(interest).topics, fanOut, extraOf(interest));
      return history.anchor(lastEventId === EARLIEST ? undefined : lastEventId, filter, Date.now());
    },
  };

  function handler<Req extends SseRequest = SseRequest>(typedOptions: HubHandlerOptions<Req> = {}): SseHandler<Req> {
    // The handler hands these functions the requests it was typed for.
    const handlerOptions = typedOptions as HubHandlerOptions;
    const { topics: chooseTopics = queryTopics, onConnect = acceptStream, ...rest } = handlerOptions;
    const withTopics = (request: SseRequest, answer: ConnectResult, topics: string[]): ConnectResult => {
      const checked = checkTopics(topics, 'the topics option');
      if (checked.length === 0) return { status: 204 };
      (request as Chosen)[CHOSEN] = checked;
      return answer;
    };
    const afterAnswer = (request: SseRequest, answer: ConnectResult): ConnectResult | Promise<ConnectResult> => {
      if ((Array.isArray(answer) ? answer[0] : answer.status) !== 200) return answer;
      const topics = chooseTopics(request);
      return isThenable(topics) ? topics.then((list) => withTopics(request, answer, list)) : withTopics(request, answer, topics);
    };
    const settings = resolveSettings({
      ...streamDefaults,
      ...rest,
      // Synchronous when both parts are (the defaults are): a connection then waits for nothing.
      onConnect: (request) => {
        const answer = onConnect(request);
        return isThenable(answer) ? answer.then((result) => afterAnswer(request, result)) : afterAnswer(request, answer);
      },
    });
    // No writer: the connection just joins the fan-out, and the hub writes to it from then on.
    return createSseHandler(settings, (connection) => {
      if (closing) connection.close();
      else {
        const request = connection.request as Chosen;
        const topics = request[CHOSEN] ?? [];
        request[CHOSEN] = undefined;
        enter(connection, { topics });
      }
    });
  }

  function stats(): HubStats {
    return {
      connections: fanOut.size,
      waiting: fanOut.heldCount,
      topics: fanOut.topicCount,
      ...counts,
      history: history.size,
      backplaneConnected: backplane.connected,
      backplaneLag: lag,
    };
  }

  async function close({ retry, retryJitter = 0, timeout = 5000 }: HubCloseOptions = {}): Promise<void> {
    if (!(Number.isSafeInteger(retryJitter) && retryJitter >= 0)) throw hubOptionError('close() retryJitter', 'a non-negative integer (ms)', retryJitter);
    closing = true;
    // What was published before close() still goes out, ahead of the retry hint.
    fanOut.flush();
    const hints = retryHints(retry, retryJitter);
    const open: SseConnection[] = [];
    // Those still held (waiting for the backplane, or to catch up) are told to come back too.
    for (const subscriber of [...fanOut.all(), ...fanOut.held()]) {
      subscriber.end(hints[Math.floor(Math.random() * hints.length)]);
      if (subscriber.connection !== undefined) open.push(subscriber.connection);
    }
    // What still waits is a request (a protocol waiting to answer): released, to be refused.
    for (const waiter of catchUp.drain()) waiter.timedOut();
    // A client that reads nothing never sees the end of its stream: cut it after the grace period,
    // or it would hold server.close() open.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, timeout, true)));
    const timedOut = await Promise.race([Promise.all(open.map((connection) => connection.whenGone())).then(() => false), expired]);
    clearTimeout(timer);
    if (timedOut) {
      const stuck = open.filter((connection) => !connection.isGone);
      logger.warn({ cut: stuck.length }, 'serve-sse: hub.close() timed out waiting for clients to go; cutting their connections');
      for (const connection of stuck) connection.destroy();
    }
    await backplane.close();
  }

  const hub: Hub & { [HUB_INTERNALS]: HubInternals } = { publish, subscribe, handler, stats, close, [HUB_INTERNALS]: internals };
  return hub;
}

/** How soon to ask a log that could not say its newest id again. */
const HEAD_RETRY_MS = 250;

/** The resume point that means "everything the history holds". */
const EARLIEST = '\0earliest';
/**
 * How far the log's clock (Redis's, for the Redis backplane) may run behind this host's when a
 * subscriber that came during the history load is given what was published since: a second of
 * events from before it came, rather than one it is owed missed.
 */
const LOAD_CLOCK_SKEW_MS = 1000;

/** A stream for filters that are never written to (anchor lookups). */
const NO_STREAM: SseStream = {
  request: new Request('http://hub.invalid/'),
  lastEventId: undefined,
  signal: AbortSignal.abort(),
  closed: true,
  dropped: 0,
  send: () => Promise.resolve(),
  comment: () => Promise.resolve(),
  write: () => Promise.resolve(),
  close: () => {},
};

/** Wants nothing: where only whether an id is known matters. */
const NOTHING_WANTED = { topics: [], hasMatchers: false, wants: () => false, mayReceive: () => false };

/** Matchers and access, kept apart from the topic names (see {@link Extra}). */
function extraOf(interest: Interest): Extra | undefined {
  const matchers = interest.matchers ?? [];
  const { access } = interest;
  if (matchers.length === 0 && access === undefined) return undefined;
  const key = `${[...matchers.map((matcher) => matcher.key)].sort().join('\n')}\n\0${access?.key ?? ''}`;
  return { matchers, access, key };
}

function checkInterest(interest: Interest): Interest {
  if (interest === null || typeof interest !== 'object') throw new TypeError('serve-sse: subscribe needs topics: an array of names, or { topics, matchers?, access? }');
  const topics = interest.topics.length === 0 ? [] : checkTopics(interest.topics, 'subscribe');
  const matchers = interest.matchers ?? [];
  for (const matcher of matchers) {
    if (matcher === null || typeof matcher !== 'object' || typeof matcher.key !== 'string' || typeof matcher.matches !== 'function') {
      throw new TypeError('serve-sse: each matcher needs a key (a string) and a matches(topic) method');
    }
  }
  const { access } = interest;
  if (access !== undefined && (access === null || typeof access !== 'object' || typeof access.key !== 'string' || typeof access.allows !== 'function')) {
    throw new TypeError('serve-sse: access needs a key (a string) and an allows(topic) method');
  }
  if (topics.length === 0 && matchers.length === 0) throw new TypeError('serve-sse: subscribe needs at least one topic or matcher');
  return { topics, matchers, access };
}

function checkPublishOptions(options: PublishOptions): PublishOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('serve-sse: publish options must be an object: { id?, private? }');
  const { id, private: isPrivate } = options;
  if (id !== undefined && !(typeof id === 'string' && id !== '' && id.length <= MAX_ALIAS_LENGTH && !/[\r\n\0]/.test(id))) {
    throw new TypeError(`serve-sse: publish option id must be a non-empty string of at most ${MAX_ALIAS_LENGTH} characters without CR, LF or NUL; got ${JSON.stringify(id)?.slice(0, 80)}`);
  }
  if (isPrivate !== undefined && typeof isPrivate !== 'boolean') throw new TypeError('serve-sse: publish option private must be a boolean');
  return options;
}

/** Longest id a publisher may choose: it goes on the wire, into every replay, and into the log. */
const MAX_ALIAS_LENGTH = 1024;

/**
 * The retry hints for close(): one, or a spread of a few when jittered, each framed once and
 * shared by every client that draws it.
 */
function retryHints(retry: number | undefined, jitter: number): Payload[] {
  if (retry === undefined) return [];
  const base = formatRetry(retry);
  const steps = jitter === 0 ? 1 : Math.min(16, jitter);
  return Array.from({ length: steps }, (_, step) => {
    const value = jitter === 0 ? base : formatRetry(retry + Math.floor(((step + Math.random()) * jitter) / steps));
    return new Payload(encoder.encode(`retry: ${value}\n\n`));
  });
}

function checkTopics(topics: unknown, where: string): string[] {
  if (!Array.isArray(topics) || !topics.every((topic) => typeof topic === 'string' && topic !== '')) {
    throw new TypeError(`serve-sse: ${where} needs topics as non-empty strings; got ${JSON.stringify(topics)}`);
  }
  return topics.length > 1 ? [...new Set(topics)] : topics;
}

/**
 * What a handler's onConnect chose, carried on the request to its stream's opening: a property
 * under a private symbol, gone with the request (a WeakMap entry per connection costs the
 * collector more, at tens of thousands of connections a second).
 */
const CHOSEN = Symbol('serve-sse.topics');
type Chosen = SseRequest & { [CHOSEN]?: string[] | undefined };

function hubOptionError(name: string, expected: string, value: unknown): TypeError {
  return new TypeError(`serve-sse: hub option ${name} must be ${expected}; got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
}
