import { sharedPer, TickingSet } from './ticking-set.js';

/**
 * Keep-alive comments for many connections on one timer ({@link TickingSet}).
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

export class Heartbeat extends TickingSet<HeartbeatMember> {
  /** Ticks so far: what streams stamp their writes with. */
  ticks = 0;

  constructor(readonly intervalMs: number) {
    super(intervalMs / STEPS);
  }

  protected tick(members: Iterable<HeartbeatMember>): void {
    const ticks = ++this.ticks;
    // Deleting during iteration is safe for a Set: a member closed by its own heartbeat (a slow
    // client over its limit) simply leaves.
    for (const member of members) member.heartbeat(ticks);
  }
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
  return sharedPer(shared, intervalMs, (interval) => new Heartbeat(interval));
}
