import { SseConnection, type CloseObserver, type Delivery, type SseStream } from '../stream.js';
import { Payload } from '../transports/payload.js';
import type { HistoryEntry } from './history.js';
import type { PrivateAccess, TopicMatcher } from './interest.js';

/**
 * What a subscriber wants beyond exact topic names, when it wants more: kept apart so that a
 * plain subscriber (most of them, at tens of thousands) costs one undefined field.
 */
export interface Extra {
  readonly matchers: readonly TopicMatcher[];
  readonly access: PrivateAccess | undefined;
  /** Part of the subscriber's key: equal extras, equal bytes. */
  readonly key: string;
}

/**
 * One subscribed stream, as the fan-out sees it. A class, and its own close observer, so that a
 * subscription costs one object: no closures per connection.
 */
export class Subscriber implements CloseObserver {
  /** The connection, when the stream is ours: writes then need no promise per delivery. */
  readonly connection: SseConnection | undefined;
  /** The topics, sorted and joined: subscribers with the same key get the same bytes. */
  readonly key: string;
  /** Sequence number of the last event this subscriber has had, or was too late for. */
  since = 0;
  /** The last flush that reached this subscriber: dedupes multi-topic events without a Set. */
  round = 0;
  /** The id of the last event written to the client, for a reset that says where drops began. */
  lastId: string | undefined;
  /**
   * With `onSlowClient: "drop"`: events were skipped for this client, up to this id. The next
   * event it can take comes after a reset, so that nothing is lost without a word.
   */
  droppedUpTo: string | undefined;
  /**
   * `held`: waiting to join (for the backplane to load history, or for this instance to hear the
   * client's id), then `joined`, then `left` (possibly without joining).
   */
  state: 'new' | 'held' | 'joined' | 'left' = 'new';

  constructor(
    readonly stream: SseStream,
    /** The exact topic names. */
    readonly topics: readonly string[],
    readonly fanOut: FanOut,
    /** Matchers and private access, if any. */
    readonly extra: Extra | undefined = undefined,
  ) {
    this.connection = stream instanceof SseConnection ? stream : undefined;
    const names = topics.length === 1 ? topics[0]! : [...topics].sort().join('\n');
    this.key = extra === undefined ? names : `${names}\n\0${extra.key}`;
  }

  /**
   * Whether this subscriber should get `entry`: one of its topics is one of the subscriber's, or
   * matched by one of its matchers; and if the entry is private, the subscriber may see it.
   */
  wants(entry: HistoryEntry): boolean {
    return this.#selects(entry) && this.mayReceive(entry);
  }

  /** Whether the entry is one the subscriber may be sent, whatever its topics: public, or private and allowed. */
  mayReceive(entry: HistoryEntry): boolean {
    if (entry.private !== true) return true;
    const access = this.extra?.access;
    if (access === undefined) return false;
    for (const topic of entry.topics) if (access.allows(topic)) return true;
    return false;
  }

  /** Whether a replay must look at every entry rather than at its topics' entries alone. */
  get hasMatchers(): boolean {
    return this.extra !== undefined && this.extra.matchers.length > 0;
  }

  #selects(entry: HistoryEntry): boolean {
    for (const topic of entry.topics) if (this.topics.includes(topic)) return true;
    const matchers = this.extra?.matchers;
    if (matchers !== undefined) {
      for (const matcher of matchers) for (const topic of entry.topics) if (matcher.matches(topic)) return true;
    }
    return false;
  }

  /** Writes through the stream's slow-client policy; a stream that is not ours takes it as its `write` would. */
  offer(payload: Payload): Delivery {
    if (this.connection !== undefined) return this.connection.offer(payload);
    void this.stream.write(payload.bytes);
    return 'written';
  }

  /**
   * Writes what the client asked for (a replay, a reset) as it reads, ahead of live events: the
   * payloads are the history's own, never copied.
   */
  queue(payloads: Payload[]): void {
    if (this.connection !== undefined) this.connection.queue(payloads);
    else for (const payload of payloads) void this.stream.write(payload.bytes);
  }

  /** Ends the stream with `last` (a retry hint), sent even to a client in the middle of a replay. */
  end(last: Payload | undefined): void {
    if (this.connection !== undefined && last !== undefined) this.connection.end(last);
    else {
      if (last !== undefined) void this.stream.write(last.bytes);
      this.stream.close();
    }
  }

  unsubscribe(): void {
    this.fanOut.remove(this);
  }

  streamClosed(slow: boolean): void {
    // Counted here, whatever found the client slow: a write, or the slow-client watch's timer.
    if (slow) this.fanOut.report('evicted', 0);
    this.unsubscribe();
  }

  /** The `abort` listener for streams that are not ours (EventTarget calls `handleEvent`). */
  handleEvent(): void {
    this.unsubscribe();
  }
}

/** What a flush tells the hub, for its counters. */
export type DeliveryReport = (result: Delivery, events: number) => void;

/** The reset a client gets after events were dropped for it: `lastEventId` is the last it had, `id` the last dropped. */
export type DropReset = (lastEventId: string, id: string) => Payload;

/**
 * Topic subscriptions and the write path. Events are written in batches: one socket write per
 * client per flush instead of one per event, and the bytes for a batch are built once per
 * distinct topic set, not once per client. A system call per delivery is what bounds raw
 * `res.write`; this is how the hub does less.
 *
 * When the hub has been idle, a batch is what one event-loop turn published, flushed at the end
 * of that turn: a lone event waits for nothing. When the last flush ended moments ago, events
 * are arriving faster than they are written, and the batch waits for the next timer tick (about
 * a millisecond) to gather more, so that the cost per event falls as the load rises.
 */
export class FanOut {
  /** Joined subscribers: a count, not a Set, since only shutdown needs them all (from the groups). */
  #count = 0;
  /** Subscribers waiting to join: open subscriptions all the same. */
  readonly #held = new Set<Subscriber>();
  readonly #byTopic = new Map<string, TopicGroup>();
  /** Subscribers by matcher key: each distinct matcher is asked once per topic of each event. */
  readonly #byMatcher = new Map<string, MatcherGroup>();
  /** Tells the hub's counters what became of deliveries. */
  readonly report: DeliveryReport;
  readonly #dropReset: DropReset;
  #pending: HistoryEntry[] = [];
  /** A flush is scheduled. A stale one (after an explicit flush) finds nothing to do. */
  #scheduled = false;
  #flushedAt = -Infinity;
  #round = 0;
  /** The last key looked up in the flush's shares, and its share. */
  #lastKey: string | undefined;
  #lastShare: Share | undefined;

  constructor(report: DeliveryReport, dropReset: DropReset) {
    this.report = report;
    this.#dropReset = dropReset;
  }

  /** Topics, and distinct matchers, with at least one subscriber. */
  get topicCount(): number {
    return this.#byTopic.size + this.#byMatcher.size;
  }

  /** Open subscriptions: joined, or held until they can join. */
  get size(): number {
    return this.#count + this.#held.size;
  }

  /** Subscriptions held until they can join. */
  get heldCount(): number {
    return this.#held.size;
  }

  /** A copy of the subscriptions held until they can join. */
  held(): Subscriber[] {
    return [...this.#held];
  }

  /** Every joined subscriber, once. */
  all(): Set<Subscriber> {
    const all = new Set<Subscriber>();
    for (const group of this.#byTopic.values()) for (const subscriber of group) all.add(subscriber);
    for (const group of this.#byMatcher.values()) for (const subscriber of group) all.add(subscriber);
    return all;
  }

  /** Counts a subscription that cannot join yet; {@link add} or {@link remove} ends the hold. */
  hold(subscriber: Subscriber): void {
    if (subscriber.state !== 'new') return;
    subscriber.state = 'held';
    this.#held.add(subscriber);
  }

  add(subscriber: Subscriber): void {
    if (subscriber.state === 'held') this.#held.delete(subscriber);
    subscriber.state = 'joined';
    this.#count++;
    for (const topic of subscriber.topics) {
      let group = this.#byTopic.get(topic);
      if (group === undefined) this.#byTopic.set(topic, (group = new TopicGroup(topic)));
      group.add(subscriber);
    }
    for (const matcher of subscriber.extra?.matchers ?? []) {
      let group = this.#byMatcher.get(matcher.key);
      if (group === undefined) this.#byMatcher.set(matcher.key, (group = new MatcherGroup(matcher)));
      group.add(subscriber);
    }
  }

  /**
   * The same topic list, shared with earlier subscribers of that one topic when there are some: at
   * tens of thousands of idle subscribers, one array and one string instead of one each.
   */
  intern(topics: readonly string[]): readonly string[] {
    return topics.length === 1 ? (this.#byTopic.get(topics[0]!)?.alone ?? topics) : topics;
  }

  remove(subscriber: Subscriber): boolean {
    const { state } = subscriber;
    subscriber.state = 'left';
    if (state === 'held') this.#held.delete(subscriber);
    if (state !== 'joined') return false;
    this.#count--;
    for (const topic of subscriber.topics) {
      const group = this.#byTopic.get(topic);
      group?.delete(subscriber);
      if (group?.size === 0) this.#byTopic.delete(topic);
    }
    for (const matcher of subscriber.extra?.matchers ?? []) {
      const group = this.#byMatcher.get(matcher.key);
      group?.delete(subscriber);
      if (group?.size === 0) this.#byMatcher.delete(matcher.key);
    }
    return true;
  }

  /** Queues a published event for the next flush. */
  enqueue(entry: HistoryEntry): void {
    this.#pending.push(entry);
    if (this.#scheduled) return;
    this.#scheduled = true;
    if (performance.now() - this.#flushedAt < BUSY_MS) setTimeout(this.flush, 0);
    else setImmediate(this.flush);
  }

  /** Writes every queued event now. */
  readonly flush = (): void => {
    this.#scheduled = false;
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    const mark = ++this.#round;
    // Per topic set, the bytes every subscriber that had everything before this batch gets.
    const shared = new Map<string, Share>();
    this.#lastKey = undefined;
    this.#lastShare = undefined;
    for (const entry of batch) {
      for (const topic of entry.topics) {
        const group = this.#byTopic.get(topic);
        if (group !== undefined) this.#deliverAll(group, mark, batch, shared);
        if (this.#byMatcher.size === 0) continue;
        for (const matched of this.#byMatcher.values()) {
          if (matched.matcher.matches(topic)) this.#deliverAll(matched, mark, batch, shared);
        }
      }
    }
    this.#lastShare = undefined;
    this.#flushedAt = performance.now();
  };

  #deliverAll(group: Set<Subscriber>, mark: number, batch: HistoryEntry[], shared: Map<string, Share>): void {
    for (const subscriber of group) {
      if (subscriber.round === mark) continue;
      subscriber.round = mark;
      this.#deliver(subscriber, batch, shared);
    }
  }

  #deliver(subscriber: Subscriber, batch: HistoryEntry[], shared: Map<string, Share>): void {
    const whole = subscriber.since < batch[0]!.seq;
    let share: Share | undefined;
    if (whole) {
      // Subscribers of one topic mostly share one key: the last share found is the likely one.
      const key = subscriber.key;
      share = key === this.#lastKey ? this.#lastShare : shared.get(key);
      if (share === undefined) shared.set(key, (share = select(batch, subscriber)));
      this.#lastKey = key;
      this.#lastShare = share;
    } else {
      share = select(batch, subscriber);
    }
    subscriber.since = batch[batch.length - 1]!.seq;
    if (share.events === 0) return;
    const delivery = subscriber.droppedUpTo === undefined ? subscriber.offer(share.payload) : this.#afterDrops(subscriber, share);
    if (delivery === 'written') subscriber.lastId = share.lastId;
    else if (delivery === 'dropped') subscriber.droppedUpTo = share.lastId;
    // An eviction is counted once, when the stream tells its subscriber why it closed.
    if (delivery !== 'evicted') this.report(delivery, share.events);
  }

  /** The reset first, if the client can take it now; then the events. */
  #afterDrops(subscriber: Subscriber, share: Share): Delivery {
    const reset = this.#dropReset(subscriber.lastId ?? '', subscriber.droppedUpTo!);
    const delivery = subscriber.offer(reset);
    if (delivery !== 'written') return delivery;
    subscriber.droppedUpTo = undefined;
    return subscriber.offer(share.payload);
  }
}

/** The subscribers of one topic. */
class TopicGroup extends Set<Subscriber> {
  /** The topic list of a subscriber of this topic alone, for {@link FanOut.intern}. */
  readonly alone: readonly string[];

  constructor(topic: string) {
    super();
    this.alone = [topic];
  }
}

/** The subscribers of one matcher. */
class MatcherGroup extends Set<Subscriber> {
  constructor(readonly matcher: TopicMatcher) {
    super();
  }
}

/** A flush that ended less than this long ago (ms) means events are coming in faster than one per turn. */
const BUSY_MS = 1;

interface Share {
  payload: Payload;
  events: number;
  /** The id of the last event in it. */
  lastId: string;
}

const NOTHING: Share = { payload: new Payload(new Uint8Array(0)), events: 0, lastId: '' };

/** The events of a batch that a subscriber should get, as one payload. */
function select(batch: HistoryEntry[], subscriber: Subscriber): Share {
  const chosen: Payload[] = [];
  let lastId = '';
  for (const entry of batch) {
    if (entry.seq > subscriber.since && subscriber.wants(entry)) {
      chosen.push(entry.payload);
      lastId = entry.id;
    }
  }
  if (chosen.length === 0) return NOTHING;
  return { payload: chosen.length === 1 ? chosen[0]! : concat(chosen), events: chosen.length, lastId };
}

/** One payload from several, for a single write. */
export function concat(payloads: Payload[]): Payload {
  let size = 0;
  for (const payload of payloads) size += payload.bytes.byteLength;
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const payload of payloads) {
    bytes.set(payload.bytes, at);
    at += payload.bytes.byteLength;
  }
  return new Payload(bytes);
}
