/**
 * The hub's memory of recent events, for replay: a ring buffer bounded by count and by age, and
 * the ids that index it. Ids are `<epoch>-<sequence>`: the epoch tells this hub's ids from those of
 * an earlier process (which it cannot replay), the sequence orders them.
 */

import type { Payload } from '../transports/payload.js';

export interface HistoryEntry {
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

const ID = /^(\d+)-(\d+)$/;
let lastEpoch = 0;

export class History {
  /** Distinguishes this hub's ids from any other's in this process, and from earlier processes. */
  readonly epoch: number;
  #seq = 0;
  readonly #ring: Array<HistoryEntry | undefined>;
  #start = 0;
  #size = 0;

  constructor(
    readonly capacity: number,
    readonly maxAge: number | undefined,
  ) {
    this.epoch = lastEpoch = Math.max(Date.now(), lastEpoch + 1);
    this.#ring = new Array<HistoryEntry | undefined>(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** The id of the most recent event, if any was published. */
  get lastId(): string | undefined {
    return this.#seq === 0 ? undefined : `${this.epoch}-${this.#seq}`;
  }

  /** Sequence number of the most recent event; 0 before any. */
  get lastSeq(): number {
    return this.#seq;
  }

  /** Assigns the next id. */
  nextId(): { seq: number; id: string } {
    const seq = ++this.#seq;
    return { seq, id: `${this.epoch}-${seq}` };
  }

  add(entry: HistoryEntry): void {
    if (this.capacity === 0) return;
    const end = (this.#start + this.#size) % this.capacity;
    this.#ring[end] = entry;
    if (this.#size < this.capacity) this.#size++;
    else this.#start = (this.#start + 1) % this.capacity;
  }

  /** Every retained event after `lastEventId`, oldest first, or why there is no telling. */
  since(lastEventId: string, now: number): Since {
    this.#expire(now);
    const match = ID.exec(lastEventId);
    if (match === null || Number(match[1]) !== this.epoch) return { known: false, reason: 'unknown' };
    const seq = Number(match[2]);
    if (seq > this.#seq) return { known: false, reason: 'unknown' };
    const oldest = this.#size === 0 ? this.#seq + 1 : this.#entry(0).seq;
    // The client must have seen the event just before the oldest one kept, or it missed some.
    if (seq < oldest - 1) return { known: false, reason: 'expired' };
    const entries: HistoryEntry[] = [];
    for (let i = seq - oldest + 1; i < this.#size; i++) entries.push(this.#entry(i));
    return { known: true, entries };
  }

  #entry(index: number): HistoryEntry {
    return this.#ring[(this.#start + index) % this.capacity]!;
  }

  /** Drops events past their age. Lazy: done when a replay asks, so no timer runs for it. */
  #expire(now: number): void {
    if (this.maxAge === undefined) return;
    while (this.#size > 0 && now - this.#entry(0).time > this.maxAge) {
      this.#ring[this.#start] = undefined;
      this.#start = (this.#start + 1) % this.capacity;
      this.#size--;
    }
  }
}
