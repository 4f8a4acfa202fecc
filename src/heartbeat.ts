/**
 * Keep-alive comments for many connections on one timer. A timer per connection costs a handle
 * and a closure each; at tens of thousands of clients that is real memory and scheduling work.
 *
 * The timer ticks {@link STEPS} times per interval, and each stream remembers the tick of its
 * last write (a number, set on every write). A stream gets a comment on the tick that would
 * otherwise let its silence pass the interval: so no stream is silent longer than `keepAlive`
 * (plus the timer's lateness), and a stream that writes at least every three quarters of the
 * interval never gets a comment. Checking only "wrote since the last beat", once per interval,
 * let a stream that wrote just after a beat stay silent for almost two intervals.
 */

/** Ticks per interval: silence is measured in ticks, so a quarter-interval is the resolution. */
export const STEPS = 4;

export interface HeartbeatMember {
  /** Called on every tick with the tick count; a member decides whether it needs to write. */
  heartbeat(ticks: number): void;
}

export class Heartbeat {
  readonly #members = new Set<HeartbeatMember>();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Ticks so far: what streams stamp their writes with. */
  ticks = 0;

  constructor(readonly intervalMs: number) {}

  get size(): number {
    return this.#members.size;
  }

  add(member: HeartbeatMember): void {
    this.#members.add(member);
    if (this.#timer === undefined) {
      this.#timer = setInterval(this.#beat, this.intervalMs / STEPS);
      // Open sockets keep a server alive; the heartbeat alone should not keep a process alive.
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  delete(member: HeartbeatMember): void {
    this.#members.delete(member);
    if (this.#members.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  readonly #beat = (): void => {
    const ticks = ++this.ticks;
    // Deleting during iteration is safe for a Set: a member closed by its own heartbeat (a slow
    // client over its limit) simply leaves.
    for (const member of this.#members) member.heartbeat(ticks);
  };
}

/**
 * Whether a stream that last wrote at tick `wroteAt` needs a comment at tick `ticks`: without one,
 * by the next tick its silence could pass the interval.
 */
export function dueForComment(wroteAt: number, ticks: number): boolean {
  return ticks - wroteAt >= STEPS;
}

const shared = new Map<number, Heartbeat>();

/** The process-wide heartbeat for one interval: every stream with the same `keepAlive` shares it. */
export function sharedHeartbeat(intervalMs: number): Heartbeat {
  let heartbeat = shared.get(intervalMs);
  if (heartbeat === undefined) {
    heartbeat = new Heartbeat(intervalMs);
    shared.set(intervalMs, heartbeat);
  }
  return heartbeat;
}
