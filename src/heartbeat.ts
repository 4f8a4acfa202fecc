/**
 * Keep-alive comments for many connections on one timer. A timer per connection costs a handle
 * and a closure each; at tens of thousands of clients that is real memory and scheduling work,
 * and a heartbeat does not need per-connection precision.
 */

export interface HeartbeatMember {
  /** Called once per period; a member decides whether it needs to write anything. */
  heartbeat(): void;
}

export class Heartbeat {
  readonly #members = new Set<HeartbeatMember>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly intervalMs: number) {}

  get size(): number {
    return this.#members.size;
  }

  add(member: HeartbeatMember): void {
    this.#members.add(member);
    if (this.#timer === undefined) {
      this.#timer = setInterval(this.#beat, this.intervalMs);
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
    // Deleting during iteration is safe for a Set: a member closed by its own heartbeat (a slow
    // client over its limit) simply leaves.
    for (const member of this.#members) member.heartbeat();
  };
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
