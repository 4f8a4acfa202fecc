/**
 * Clients that resume from an id this instance has not heard yet. On a backplane, an instance
 * can lag behind the log (cut off from Redis, paused by a long GC); a client that moves to it
 * from an instance that is ahead carries an id from its future. Resetting it would send it back
 * in time (then every event in between again); instead it waits, subscribed but not yet joined,
 * until the instance hears that id (or one past it), and then joins exactly there. The wait is
 * bounded: past `timeoutMs`, the hub ends its stream and the client comes back later, perhaps
 * to a healthier instance, with the same id.
 */

import { logIdKey } from '../backplanes/log-id.js';
import type { Subscriber } from './fanout.js';

interface Waiting {
  subscriber: Subscriber;
  deadline: number;
}

export class CatchUp {
  /** Waiting subscribers by the key of the id they wait for, and those keys in order. */
  readonly #byKey = new Map<string, Subscriber[]>();
  #keys: string[] = [];
  /** In order of arrival, which is the order of deadlines: the timer only looks at the front. */
  #deadlines: Waiting[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly timeoutMs: number,
    /** Ends the streams of subscribers that waited too long. */
    readonly onTimeout: (subscribers: Subscriber[]) => void,
  ) {}

  /** Holds `subscriber` until an id at or past `id` is heard. */
  wait(subscriber: Subscriber, id: string): void {
    const key = logIdKey(id);
    const waiting = this.#byKey.get(key);
    if (waiting !== undefined) waiting.push(subscriber);
    else {
      this.#byKey.set(key, [subscriber]);
      this.#keys.splice(insertionPoint(this.#keys, key), 0, key);
    }
    this.#deadlines.push({ subscriber, deadline: Date.now() + this.timeoutMs });
    this.#timer ??= setTimeout(this.#expire, this.timeoutMs);
  }

  /**
   * The instance heard `id`: the subscribers waiting for it or for an earlier id, oldest id first
   * (some may have left meanwhile: the caller looks at their state).
   */
  heard(id: string): Subscriber[] {
    if (this.#keys.length === 0) return [];
    const key = logIdKey(id);
    const due: Subscriber[] = [];
    let passed = 0;
    while (passed < this.#keys.length && this.#keys[passed]! <= key) {
      const waitingKey = this.#keys[passed++]!;
      due.push(...this.#byKey.get(waitingKey)!);
      this.#byKey.delete(waitingKey);
    }
    if (passed > 0) this.#keys = this.#keys.slice(passed);
    return due;
  }

  /** Every subscriber that was waiting (some may have joined or left), and the wait is over: the hub is closing. */
  drain(): Subscriber[] {
    const all = this.#deadlines.map(({ subscriber }) => subscriber);
    this.#byKey.clear();
    this.#keys = [];
    this.#deadlines = [];
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return all;
  }

  readonly #expire = (): void => {
    this.#timer = undefined;
    const now = Date.now();
    let expired = 0;
    const late: Subscriber[] = [];
    // Subscribers that joined or left meanwhile are skipped here, and forgotten.
    while (expired < this.#deadlines.length && this.#deadlines[expired]!.deadline <= now) {
      const { subscriber } = this.#deadlines[expired++]!;
      if (subscriber.state === 'held') late.push(subscriber);
    }
    this.#deadlines = this.#deadlines.slice(expired).filter(({ subscriber }) => subscriber.state === 'held');
    if (late.length > 0) this.onTimeout(late);
    const next = this.#deadlines[0];
    if (next !== undefined) this.#timer = setTimeout(this.#expire, Math.max(1, next.deadline - now));
    else this.#forgetAll();
  };

  /** Nothing waits any more: the keys may only name subscribers that joined or left. */
  #forgetAll(): void {
    this.#byKey.clear();
    this.#keys = [];
  }
}

function insertionPoint(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (keys[middle]! < key) low = middle + 1;
    else high = middle;
  }
  return low;
}
