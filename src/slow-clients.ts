/**
 * The slow-client rule's clock. A client is slow when it fails to drain: its unsent bytes stay
 * over `highWaterMark` for `slowClientTimeout` (or pass the hard cap, which the stream checks on
 * each write). A burst that a reading client takes in is not slow, however large, up to the cap.
 *
 * Only streams over their mark are watched, so an idle server pays nothing, and one timer serves
 * every watched stream with the same timeout: after a burst to ten thousand clients, that is one
 * set insertion each rather than ten thousand timers.
 */

export interface SlowMember {
  /**
   * Called on every tick while watched. Returns false once the member no longer needs watching
   * (back under its mark, or closed); it then leaves the watch.
   */
  checkSlow(now: number): boolean;
}

export class SlowWatch {
  readonly #members = new Set<SlowMember>();
  readonly #tick: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly timeoutMs: number) {
    // Ten checks per timeout: a slow client is cut within 1.1 × the timeout (and a second at most).
    this.#tick = Math.min(1000, Math.max(10, Math.round(timeoutMs / 10)));
  }

  get size(): number {
    return this.#members.size;
  }

  add(member: SlowMember): void {
    this.#members.add(member);
    if (this.#timer === undefined) {
      this.#timer = setInterval(this.#check, this.#tick);
      // A slow client alone must not keep a process alive that has nothing else to do.
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  delete(member: SlowMember): void {
    this.#members.delete(member);
    if (this.#members.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  readonly #check = (): void => {
    const now = performance.now();
    for (const member of this.#members) if (!member.checkSlow(now)) this.delete(member);
  };
}

const shared = new Map<number, SlowWatch>();

/** The process-wide watch for one timeout: every stream with the same `slowClientTimeout` shares it. */
export function sharedSlowWatch(timeoutMs: number): SlowWatch {
  let watch = shared.get(timeoutMs);
  if (watch === undefined) {
    watch = new SlowWatch(timeoutMs);
    shared.set(timeoutMs, watch);
  }
  return watch;
}
