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
  /** The log's id. */
  readonly id: string;
  /** The id on the wire, when the publisher chose it (else it is {@link id}). */
  readonly alias?: string | undefined;
  readonly private?: boolean | undefined;
  readonly topics: readonly string[];
  /** The event as sent, id included: serialised once, shared by every delivery and replay. */
  readonly payload: Payload;
  readonly time: number;
}

/** Who a replay is for: its topics, whether it has matchers too, and which entries it wants. */
export interface ReplayFilter {
  readonly topics: readonly string[];
  /** Matchers can want any topic: the replay then looks at every entry instead of the topics' own. */
  readonly hasMatchers: boolean;
  wants(entry: HistoryEntry): boolean;
  /** Whether it may be sent this entry at all (public, or private and allowed). */
  mayReceive(entry: HistoryEntry): boolean;
}

/** How far back {@link History.anchor} looks for an event the subscriber may see. */
export const ANCHOR_SCAN_LIMIT = 1000;

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
  /** Entries by the id their publisher chose; a duplicate id resolves to the earliest entry. */
  readonly #byAlias = new Map<string, HistoryEntry>();
  /**
   * The id just before the oldest entry kept: a client that has it missed nothing we hold.
   * Starts at the log's origin, when the backplane knows it.
   */
  #floor: string | undefined;
  #last: string | undefined;
  #lastWire: string | undefined;

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

  /** The id on the wire of the most recent event, if any (its publisher's, or the log's). */
  get lastWireId(): string | undefined {
    return this.#lastWire;
  }

  add(entry: HistoryEntry): void {
    this.#last = entry.id;
    this.#lastWire = entry.alias ?? entry.id;
    if (this.capacity === 0) {
      this.#floor = entry.id;
      return;
    }
    if (this.#size === this.capacity) this.#forgetOldest();
    this.#ring[(this.#start + this.#size) % this.capacity] = entry;
    this.#size++;
    if (entry.alias !== undefined && !this.#byAlias.has(entry.alias)) this.#byAlias.set(entry.alias, entry);
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
    this.#byAlias.clear();
    this.#start = 0;
    this.#size = 0;
    this.#floor = undefined;
  }

  /**
   * The retained events `filter` wants after `lastEventId` (a log id, or an id a publisher chose),
   * oldest first, or why there is no telling.
   */
  since(lastEventId: string, filter: ReplayFilter, now: number): Since {
    this.#expire(now);
    const seq = this.#seqOf(lastEventId);
    if (seq !== undefined) return { known: true, entries: this.#after(seq, filter) };
    if (!isLogId(lastEventId)) return { known: false, reason: 'unknown' };
    const oldest = this.#size > 0 ? this.#entry(0).id : this.#last;
    if (oldest === undefined || compareLogIds(lastEventId, this.#last!) > 0) return { known: false, reason: 'ahead' };
    // Older than what we hold, yet from this log: its successors were trimmed or aged out.
    const fromThisLog = this.origin === undefined || compareLogIds(lastEventId, this.origin) > 0;
    if (compareLogIds(lastEventId, oldest) < 0 && fromThisLog) return { known: false, reason: 'expired' };
    return { known: false, reason: 'unknown' };
  }

  /** Every retained event `filter` wants, oldest first: a replay from the start (Mercure's `earliest`). */
  all(filter: ReplayFilter, now: number): HistoryEntry[] {
    this.#expire(now);
    return this.#after(-Infinity, filter);
  }

  /**
   * The retained events `filter` wants that the log stamped at `time` or later, oldest first:
   * what a subscriber that came while the history was loading is owed.
   */
  stampedSince(time: number, filter: ReplayFilter, now: number): HistoryEntry[] {
    this.#expire(now);
    let low = 0;
    let high = this.#size;
    // Stamps never decrease along the ring: the log's ids carry them.
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#entry(middle).time < time) low = middle + 1;
      else high = middle;
    }
    return low === this.#size ? [] : this.#after(this.#entry(low).seq - 1, filter);
  }

  /** Whether this instance has heard the log up to `id` (a log id): its newest entry is at or past it. */
  reached(id: string): boolean {
    return this.#last !== undefined && compareLogIds(this.#last, id) >= 0;
  }

  /**
   * The id (on the wire) of the event a replay after `lastEventId` starts from, if `filter` may be
   * sent it (public, or private and allowed), else of the most recent one before it that it may,
   * within {@link ANCHOR_SCAN_LIMIT} entries; undefined if `lastEventId` is not retained or none is
   * found. Without `lastEventId`, the newest it may be sent. Mercure's `Last-Event-ID` response
   * header: equal to the id asked for when nothing was lost, and never naming an event the
   * subscriber may not see.
   */
  anchor(lastEventId: string | undefined, filter: ReplayFilter, now: number): string | undefined {
    this.#expire(now);
    let index: number;
    if (lastEventId === undefined) index = this.#size - 1;
    else {
      const seq = this.#seqOf(lastEventId);
      if (seq === undefined) return undefined;
      index = this.#indexAfter(seq) - 1;
    }
    for (let scanned = 0; index >= 0 && scanned < ANCHOR_SCAN_LIMIT; index--, scanned++) {
      const entry = this.#entry(index);
      if (filter.mayReceive(entry)) return entry.alias ?? entry.id;
    }
    return undefined;
  }

  /**
   * The local sequence number a replay after `lastEventId` starts after: that of its entry (an id
   * a publisher chose, then a log id), or of the floor; undefined if it is not retained.
   */
  #seqOf(lastEventId: string): number | undefined {
    if (lastEventId === this.#last) return this.#size > 0 ? this.#entry(this.#size - 1).seq : Infinity;
    const aliased = this.#byAlias.get(lastEventId);
    if (aliased !== undefined) return aliased.seq;
    if (lastEventId === this.#floor) return this.#size > 0 ? this.#entry(0).seq - 1 : Infinity;
    if (!isLogId(lastEventId)) return undefined;
    const found = this.#find(lastEventId);
    return found === undefined ? undefined : this.#entry(found).seq;
  }

  /** The index of the first retained entry after local sequence number `seq`. */
  #indexAfter(seq: number): number {
    let low = 0;
    let high = this.#size;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#entry(middle).seq <= seq) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The entries `filter` wants after local sequence number `seq`, in order, each once. */
  #after(seq: number, filter: ReplayFilter): HistoryEntry[] {
    if (filter.hasMatchers) {
      const entries: HistoryEntry[] = [];
      for (let i = this.#indexAfter(seq); i < this.#size; i++) {
        const entry = this.#entry(i);
        if (filter.wants(entry)) entries.push(entry);
      }
      return entries;
    }
    // By its topics' own lists: the cost is what is sent, not the size of the history.
    return this.#byTopics(seq, filter.topics).filter((entry) => filter.mayReceive(entry));
  }

  /** The entries of any of `topics` after local sequence number `seq`, in order, each once. */
  #byTopics(seq: number, topics: readonly string[]): HistoryEntry[] {
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
    if (oldest.alias !== undefined && this.#byAlias.get(oldest.alias) === oldest) this.#byAlias.delete(oldest.alias);
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
