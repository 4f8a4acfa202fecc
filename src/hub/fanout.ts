import { SseConnection, type Delivery, type SseStream } from '../stream.js';
import { Payload } from '../transports/payload.js';
import type { HistoryEntry } from './history.js';

/** One subscribed stream, as the fan-out sees it. */
export interface Subscriber {
  readonly stream: SseStream;
  /** The connection, when the stream is ours: writes then need no promise per delivery. */
  readonly connection: SseConnection | undefined;
  readonly topics: readonly string[];
  /** The topics, sorted and joined: subscribers with the same key get the same bytes. */
  readonly key: string;
  /** Sequence number of the last event this subscriber has had, or was too late for. */
  since: number;
  /** The last flush that reached this subscriber: dedupes multi-topic events without a Set. */
  round: number;
}

export function makeSubscriber(stream: SseStream, topics: readonly string[], since: number): Subscriber {
  return {
    stream,
    connection: stream instanceof SseConnection ? stream : undefined,
    topics,
    key: topics.length === 1 ? topics[0]! : [...topics].sort().join('\n'),
    since,
    round: 0,
  };
}

/** What a flush tells the hub, for its counters. */
export type DeliveryReport = (result: Delivery, events: number) => void;

/**
 * Topic subscriptions and the write path. Events published within one timer tick (about a
 * millisecond) are written together: one socket write per client per flush instead of one per
 * event, and the bytes for a batch are built once per distinct topic set, not once per client.
 * A system call per delivery is what bounds raw `res.write`; this is how the hub does less.
 */
export class FanOut {
  readonly subscribers = new Set<Subscriber>();
  readonly #byTopic = new Map<string, Set<Subscriber>>();
  readonly #report: DeliveryReport;
  #pending: HistoryEntry[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #round = 0;

  constructor(report: DeliveryReport) {
    this.#report = report;
  }

  get topicCount(): number {
    return this.#byTopic.size;
  }

  add(subscriber: Subscriber): void {
    this.subscribers.add(subscriber);
    for (const topic of subscriber.topics) {
      let group = this.#byTopic.get(topic);
      if (group === undefined) this.#byTopic.set(topic, (group = new Set()));
      group.add(subscriber);
    }
  }

  remove(subscriber: Subscriber): boolean {
    if (!this.subscribers.delete(subscriber)) return false;
    for (const topic of subscriber.topics) {
      const group = this.#byTopic.get(topic);
      group?.delete(subscriber);
      if (group?.size === 0) this.#byTopic.delete(topic);
    }
    return true;
  }

  /** Queues a published event for the next flush. */
  enqueue(entry: HistoryEntry): void {
    this.#pending.push(entry);
    this.#timer ??= setTimeout(this.flush, 0);
  }

  /** Writes every queued event now. */
  readonly flush = (): void => {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    const mark = ++this.#round;
    // Per topic set, the bytes every subscriber that had everything before this batch gets.
    const shared = new Map<string, Share>();
    for (const entry of batch) {
      for (const topic of entry.topics) {
        const group = this.#byTopic.get(topic);
        if (group === undefined) continue;
        for (const subscriber of group) {
          if (subscriber.round === mark) continue;
          subscriber.round = mark;
          this.#deliver(subscriber, batch, shared);
        }
      }
    }
  };

  #deliver(subscriber: Subscriber, batch: HistoryEntry[], shared: Map<string, Share>): void {
    const whole = subscriber.since < batch[0]!.seq;
    let share = whole ? shared.get(subscriber.key) : undefined;
    if (share === undefined) {
      share = select(batch, subscriber);
      if (whole) shared.set(subscriber.key, share);
    }
    subscriber.since = batch[batch.length - 1]!.seq;
    if (share.events === 0) return;
    const { connection } = subscriber;
    if (connection === undefined) {
      void subscriber.stream.write(share.payload.bytes);
      this.#report('written', share.events);
    } else {
      this.#report(connection.offer(share.payload), share.events);
    }
  }
}

interface Share {
  payload: Payload;
  events: number;
}

const NOTHING: Share = { payload: new Payload(new Uint8Array(0)), events: 0 };

/** The events of a batch that a subscriber should get, as one payload. */
function select(batch: HistoryEntry[], subscriber: Subscriber): Share {
  const chosen: Payload[] = [];
  for (const entry of batch) {
    if (entry.seq > subscriber.since && sharesTopic(entry, subscriber.topics)) chosen.push(entry.payload);
  }
  if (chosen.length === 0) return NOTHING;
  return { payload: chosen.length === 1 ? chosen[0]! : concat(chosen), events: chosen.length };
}

export function sharesTopic(entry: HistoryEntry, topics: readonly string[]): boolean {
  for (const topic of entry.topics) if (topics.includes(topic)) return true;
  return false;
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
