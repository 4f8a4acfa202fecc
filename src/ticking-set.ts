/**
 * A set whose members are visited on one interval timer, which runs only while the set has
 * members: what the keep-alive heartbeat and the slow-client watch are made of. One timer for
 * many members, rather than one each: at tens of thousands of streams that is real memory and
 * scheduling work, and neither needs per-member precision.
 */
export abstract class TickingSet<T> {
  readonly #members = new Set<T>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly periodMs: number) {}

  /** Called every `periodMs` while there are members; it may delete members as it goes. */
  protected abstract tick(members: Iterable<T>): void;

  get size(): number {
    return this.#members.size;
  }

  add(member: T): void {
    this.#members.add(member);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.tick(this.#members), this.periodMs);
      // Open sockets keep a server alive; this timer alone should not keep a process alive.
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  delete(member: T): void {
    this.#members.delete(member);
    if (this.#members.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/** The one instance per value (of an interval, a timeout) that every stream with that value shares. */
export function sharedPer<T>(instances: Map<number, T>, value: number, make: (value: number) => T): T {
  let instance = instances.get(value);
  if (instance === undefined) {
    instance = make(value);
    instances.set(value, instance);
  }
  return instance;
}
