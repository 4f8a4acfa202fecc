/**
 * The slow-client rule's clock. A client is slow when it fails to drain: its unsent bytes stay
 * over `highWaterMark` for `slowClientTimeout` (or pass the hard cap, which the stream checks on
 * each write). A burst that a reading client takes in is not slow, however large, up to the cap.
 *
 * Only streams over their mark are watched, so an idle server pays nothing, and one timer serves
 * every watched stream with the same timeout ({@link TickingSet}): after a burst to ten thousand
 * clients, that is one set insertion each rather than ten thousand timers.
 */
import { sharedPer, TickingSet } from './ticking-set.js';

export interface SlowMember {
  /**
   * Called on every tick while watched. Returns false once the member no longer needs watching
   * (back under its mark, or closed); it then leaves the watch.
   */
  checkSlow(now: number): boolean;
}

export class SlowWatch extends TickingSet<SlowMember> {
  constructor(readonly timeoutMs: number) {
    // Ten checks per timeout: a slow client is cut within 1.1 × the timeout (and a second at most).
    super(Math.min(1000, Math.max(10, Math.round(timeoutMs / 10))));
  }

  protected tick(members: Iterable<SlowMember>): void {
    const now = performance.now();
    for (const member of members) if (!member.checkSlow(now)) this.delete(member);
  }
}

const shared = new Map<number, SlowWatch>();

/** The process-wide watch for one timeout: every stream with the same `slowClientTimeout` shares it. */
export function sharedSlowWatch(timeoutMs: number): SlowWatch {
  return sharedPer(shared, timeoutMs, (timeout) => new SlowWatch(timeout));
}
