/**
 * The hub's memory of recent events, for replay: a ring buffer bounded by count and by age, and
 * beside it an index by topic, so that a replay costs what it sends: a client of topics nobody
 * published to lately is answered without looking at the history at all.
 * Ids come from the backplane's log (`<number>-<number>`, increasing); a client's
 * `Last-Event-ID` is found by exact match, so replay never guesses across ids it has not seen.
 */

import { compareLogIds, isLogId } from '../backplanes/log-id.js';
import type { Payload } from '../transports/payload.js';

export interface HistoryEntry {
  /** Local order of arrival: what the fan-out and the index compare, cheaper than ids. */
  readonly seq: number;
  readonly id: string;
  readonly topics: readonly string[];
  /** The event as sent, id included: serialised once, shared by every delivery and replay. */
  readonly payload: Payload;
  readonly time: number;
}

/**
 * What the history knows of a client's last event id: the entries of its topics after it, or why
 * there is no telling. `ahead`: a log id newer than any this instance has heard, which a lagging
 * instance may hear yet.
 */
export type Since =
  | { known: true; entries: HistoryEntry[] }
  | { known: false; reason: 'unknown' | 'expired' | 'ahead' };

/** The entries of one topic, oldest first: a queue whose head moves as the ring forgets. */
class TopicEntries {
  entries: HistoryEntry[] = [];
  start = 0;

  get size(): number {
    return this.entries.length - this.start;
  }

  /** Forgets the oldest entry (which the ring forgot too). */
  shift(): void {
    this.entries[this.start++] = undefined as unknown as HistoryEntry;
    // Compacted now and then, so that a busy topic does not keep a long dead prefix.
    if (this.start >= 1024 && this.start * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.start);
      this.start = 0;
    }
  }

  /** The entries after local sequence number `seq`, by binary search. */
  after(seq: number): HistoryEntry[] {
    let low = this.start;
    let high = this.entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.entries[middle]!.seq <= seq) low = middle + 1;
      else high = middle;
    }
    return this.entries.slice(low);
  }
}

export class History {
  readonly #ring: Array<HistoryEntry | undefined>;
  #start = 0;
  #size = 0;
  readonly #byTopic = new Map<string, TopicEntries>();
  /**
   * The id just before the oldest entry kept: a client that has it missed nothing we hold.
   * Starts at the log's origin, when the backplane knows it.
   */
  #floor: string | undefined;
  #last: string | undefined;

  constructor(
    readonly capacity: number,
    readonly maxAge: number | undefined,
    readonly origin: string | undefined,
  ) {
    this.#ring = new Array<HistoryEntry | undefined>(capacity);
    this.#floor = origin;
  }

  get size(): number {
    return this.#size;
  }

  /** The id of the most recent event, if any. */
  get lastId(): string | undefined {
    return this.#last;
  }

  add(entry: HistoryEntry): void {
    this.#last = entry.id;
    if (this.capacity === 0) {
      this.#floor = entry.id;
      return;
    }
    if (this.#size === this.capacity) this.#forgetOldest();
    this.#ring[(this.#start + this.#size) % this.capacity] = entry;
    this.#size++;
    for (const topic of entry.topics) {
      let topicEntries = this.#byTopic.get(topic);
      if (topicEntries === undefined) this.#byTopic.set(topic, (topicEntries = new TopicEntries()));
      topicEntries.entries.push(entry);
    }
  }

  /** Forgets everything: the log has a gap, and no replay may span it. */
  clear(): void {
    this.#ring.fill(undefined);
    this.#byTopic.clear();
    this.#start = 0;
    this.#size = 0;
    this.#floor = undefined;
  }

  /** The retained events of `topics` after `lastEventId`, oldest first, or why there is no telling. */
  since(lastEventId: string, topics: readonly string[], now: number): Since {
    this.#expire(now);
    if (lastEventId === this.#last) return { known: true, entries: [] };
    if (lastEventId === this.#floor) return { known: true, entries: this.#after(-Infinity, topics) };
    if (!isLogId(lastEventId)) return { known: false, reason: 'unknown' };
    const found = this.#find(lastEventId);
    if (found !== undefined) return { known: true, entries: this.#after(this.#entry(found).seq, topics) };
    const oldest = this.#size > 0 ? this.#entry(0).id : this.#last;
    if (oldest === undefined || compareLogIds(lastEventId, this.#last!) > 0) return { known: false, reason: 'ahead' };
    // Older than what we hold, yet from this log: its successors were trimmed or aged out.
    const fromThisLog = this.origin === undefined || compareLogIds(lastEventId, this.origin) > 0;
    if (compareLogIds(lastEventId, oldest) < 0 && fromThisLog) return { known: false, reason: 'expired' };
    return { known: false, reason: 'unknown' };
  }

  /** The entries of any of `topics` after local sequence number `seq`, in order, each once. */
  #after(seq: number, topics: readonly string[]): HistoryEntry[] {
    if (topics.length === 1) return this.#byTopic.get(topics[0]!)?.after(seq) ?? [];
    const lists: HistoryEntry[][] = [];
    for (const topic of topics) {
      const entries = this.#byTopic.get(topic)?.after(seq);
      if (entries !== undefined && entries.length > 0) lists.push(entries);
    }
    if (lists.length <= 1) return lists[0] ?? [];
    // An event on several of the topics is in several lists: merged by order, kept once.
    const merged = lists.flat().sort((a, b) => a.seq - b.seq);
    return merged.filter((entry, index) => index === 0 || merged[index - 1] !== entry);
  }

  /** Binary search for an exact id: ids increase along the ring. */
  #find(id: string): number | undefined {
    let low = 0;
    let high = this.#size - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const order = compareLogIds(this.#entry(middle).id, id);
      if (order === 0) return middle;
      if (order < 0) low = middle + 1;
      else high = middle - 1;
    }
    return undefined;
  }

  #entry(index: number): HistoryEntry {
    return this.#ring[(this.#start + index) % this.capacity]!;
  }

  /** Drops the oldest entry, from the ring and from its topics' lists (where it is the oldest too). */
  #forgetOldest(): void {
    const oldest = this.#entry(0);
    this.#floor = oldest.id;
    this.#ring[this.#start] = undefined;
    this.#start = (this.#start + 1) % this.capacity;
    this.#size--;
    for (const topic of oldest.topics) {
      const topicEntries = this.#byTopic.get(topic);
      if (topicEntries === undefined) continue;
      topicEntries.shift();
      if (topicEntries.size === 0) this.#byTopic.delete(topic);
    }
  }

  /** Drops events past their age. Lazy: done when a replay asks, so no timer runs for it. */
  #expire(now: number): void {
    if (this.maxAge === undefined) return;
    while (this.#size > 0 && now - this.#entry(0).time > this.maxAge) this.#forgetOldest();
  }
}
