/**
 * Disconnecting subscribers when their token expires, with one timer for all of them rather than
 * one per connection: connections are grouped by their expiry second (JWT `exp` has whole
 * seconds), and the single timer is armed for the earliest group.
 */

/** setTimeout's largest delay; a later expiry just re-arms when it fires. */
const MAX_DELAY = 2 ** 31 - 1;

export class ExpiryWatch<T> {
  readonly #groups = new Map<number, Set<T>>();
  readonly #onExpire: (item: T) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The second the timer is armed for. */
  #armed = Infinity;

  constructor(onExpire: (item: T) => void) {
    this.#onExpire = onExpire;
  }

  /** Items being watched. */
  get size(): number {
    let size = 0;
    for (const group of this.#groups.values()) size += group.size;
    return size;
  }

  /** Calls `onExpire(item)` at `exp` (seconds since the epoch); the returned function cancels. */
  watch(item: T, exp: number): () => void {
    let group = this.#groups.get(exp);
    if (group === undefined) this.#groups.set(exp, (group = new Set()));
    group.add(item);
    if (exp < this.#armed) this.#arm(exp);
    return () => {
      const current = this.#groups.get(exp);
      if (current === undefined || !current.delete(item) || current.size > 0) return;
      this.#groups.delete(exp);
      // The timer stays armed: firing early for an empty group costs one look, re-arming on
      // every cancellation would cost more.
      if (this.#groups.size === 0) this.stop();
    };
  }

  /** Stops the timer; items still watched are forgotten. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armed = Infinity;
    this.#groups.clear();
  }

  #arm(exp: number): void {
    clearTimeout(this.#timer);
    this.#armed = exp;
    const delay = Math.min(MAX_DELAY, Math.max(0, exp * 1000 - Date.now()));
    this.#timer = setTimeout(this.#fire, delay);
    // A pending expiry must not keep a process alive that has nothing else to do.
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#armed = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const [exp, group] of this.#groups) {
      if (exp * 1000 > now) {
        next = Math.min(next, exp);
        continue;
      }
      this.#groups.delete(exp);
      for (const item of group) this.#onExpire(item);
    }
    if (next !== Infinity) this.#arm(next);
  };
}
