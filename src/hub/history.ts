/**
 * The hub's memory of recent events, for replay: a ring buffer bounded by count and by age.
 * Ids come from the backplane's log (`<number>-<number>`, increasing); a client's
 * `Last-Event-ID` is found by exact match, so replay never guesses across ids it has not seen.
 */

import { compareLogIds, isLogId } from '../backplanes/log-id.js';
import type { Payload } from '../transports/payload.js';

export interface HistoryEntry {
  /** Local order of arrival: what the fan-out compares, cheaper than ids. */
  readonly seq: number;
  readonly id: string;
  readonly topics: readonly string[];
  /** The event as sent, id included: serialised once, shared by every delivery and replay. */
  readonly payload: Payload;
  readonly time: number;
}

/** What the history knows of a client's last event id. */
export type Since =
  | { known: true; entries: HistoryEntry[] }
  | { known: false; reason: 'unknown' | 'expired' };

export class History {
  readonly #ring: Array<HistoryEntry | undefined>;
  #start = 0;
  #size = 0;
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
    const end = (this.#start + this.#size) % this.capacity;
    if (this.#size === this.capacity) {
      this.#floor = this.#ring[end]!.id;
      this.#start = (this.#start + 1) % this.capacity;
    } else {
      this.#size++;
    }
    this.#ring[end] = entry;
  }

  /** Forgets everything: the log has a gap, and no replay may span it. */
  clear(): void {
    this.#ring.fill(undefined);
    this.#start = 0;
    this.#size = 0;
    this.#floor = undefined;
  }

  /** Every retained event after `lastEventId`, oldest first, or why there is no telling. */
  since(lastEventId: string, now: number): Since {
    this.#expire(now);
    if (lastEventId === this.#last) return { known: true, entries: [] };
    if (lastEventId === this.#floor) return { known: true, entries: this.#slice(0) };
    if (!isLogId(lastEventId)) return { known: false, reason: 'unknown' };
    const found = this.#find(lastEventId);
    if (found !== undefined) return { known: true, entries: this.#slice(found + 1) };
    // Older than what we hold, yet from this log: its successors were trimmed or aged out.
    const oldest = this.#size > 0 ? this.#entry(0).id : this.#last;
    const fromThisLog = this.origin === undefined || compareLogIds(lastEventId, this.origin) > 0;
    if (oldest !== undefined && compareLogIds(lastEventId, oldest) < 0 && fromThisLog) return { known: false, reason: 'expired' };
    return { known: false, reason: 'unknown' };
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

  #slice(from: number): HistoryEntry[] {
    const entries: HistoryEntry[] = [];
    for (let i = from; i < this.#size; i++) entries.push(this.#entry(i));
    return entries;
  }

  #entry(index: number): HistoryEntry {
    return this.#ring[(this.#start + index) % this.capacity]!;
  }

  /** Drops events past their age. Lazy: done when a replay asks, so no timer runs for it. */
  #expire(now: number): void {
    if (this.maxAge === undefined) return;
    while (this.#size > 0 && now - this.#entry(0).time > this.maxAge) {
      this.#floor = this.#entry(0).id;
      this.#ring[this.#start] = undefined;
      this.#start = (this.#start + 1) % this.capacity;
      this.#size--;
    }
  }
}
