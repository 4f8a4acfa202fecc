/**
 * Clients that resume from an id this instance has not heard yet. On a backplane, an instance
 * can lag behind the log (cut off from Redis, paused by a long GC); a client that moves to it
 * from an instance that is ahead carries an id from its future. Resetting it would send it back
 * in time (then every event in between again); instead it waits, subscribed but not yet joined,
 * until the instance hears that id (or one past it), and then joins exactly there. The wait is
 * bounded: past `timeoutMs`, the waiter is told, and the hub ends its stream so that the client
 * comes back later, perhaps to a healthier instance, with the same id.
 */

import { logIdKey } from '../backplanes/log-id.js';

/** Something waiting for the instance to hear a log id: a held subscription, or a request. */
export interface Waiter {
  /** Still waiting (a subscription that left or joined meanwhile is skipped). */
  readonly waiting: boolean;
  /** The instance heard the id, or one past it. */
  heard(): void;
  /** It did not, within the timeout. */
  timedOut(): void;
}

interface Deadline {
  waiter: Waiter;
  deadline: number;
}

export class CatchUp {
  /** Waiters by the key of the id they wait for, and those keys in order. */
  readonly #byKey = new Map<string, Waiter[]>();
  #keys: string[] = [];
  /** In order of arrival, which is the order of deadlines: the timer only looks at the front. */
  #deadlines: Deadline[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly timeoutMs: number,
    /** Told how many timed out at once, for one log line per batch rather than one each. */
    readonly onTimeouts: (count: number) => void,
  ) {}

  /** Holds `waiter` until an id at or past `id` (a log id) is heard. */
  wait(waiter: Waiter, id: string): void {
    const key = logIdKey(id);
    const waiting = this.#byKey.get(key);
    if (waiting !== undefined) waiting.push(waiter);
    else {
      this.#byKey.set(key, [waiter]);
      this.#keys.splice(insertionPoint(this.#keys, key), 0, key);
    }
    this.#deadlines.push({ waiter, deadline: Date.now() + this.timeoutMs });
    this.#timer ??= unref(setTimeout(this.#expire, this.timeoutMs));
  }

  /** The instance heard `id`: the waiters for it or for an earlier id are told, oldest id first. */
  heard(id: string): void {
    if (this.#keys.length === 0) return;
    const key = logIdKey(id);
    let passed = 0;
    const due: Waiter[] = [];
    while (passed < this.#keys.length && this.#keys[passed]! <= key) {
      const waitingKey = this.#keys[passed++]!;
      due.push(...this.#byKey.get(waitingKey)!);
      this.#byKey.delete(waitingKey);
    }
    if (passed > 0) this.#keys = this.#keys.slice(passed);
    for (const waiter of due) if (waiter.waiting) waiter.heard();
  }

  /** The waiters still waiting, and the wait is over for all of them (the hub is closing). */
  drain(): Waiter[] {
    const all = this.#deadlines.map(({ waiter }) => waiter).filter((waiter) => waiter.waiting);
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
    const late: Waiter[] = [];
    // Waiters that were served or left meanwhile are skipped here, and forgotten.
    while (expired < this.#deadlines.length && this.#deadlines[expired]!.deadline <= now) {
      const { waiter } = this.#deadlines[expired++]!;
      if (waiter.waiting) late.push(waiter);
    }
    this.#deadlines = this.#deadlines.slice(expired).filter(({ waiter }) => waiter.waiting);
    if (late.length > 0) {
      this.onTimeouts(late.length);
      for (const waiter of late) waiter.timedOut();
    }
    const next = this.#deadlines[0];
    if (next !== undefined) this.#timer = unref(setTimeout(this.#expire, Math.max(1, next.deadline - now)));
    else this.#forgetAll();
  };

  /** Nothing waits any more: the keys may only name waiters that were served or left. */
  #forgetAll(): void {
    this.#byKey.clear();
    this.#keys = [];
  }
}

/** The connections that wait keep the process alive; the timer alone need not. */
function unref(timer: ReturnType<typeof setTimeout>): ReturnType<typeof setTimeout> {
  (timer as { unref?: () => void }).unref?.();
  return timer;
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
