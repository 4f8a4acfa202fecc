/**
 * Logging for failures that repeat: during a backplane outage every publish fails the same way,
 * and a line per failure buries everything else (hundreds a second). The first failure of a
 * kind is logged at once; later ones within the interval are counted, and come out as one line
 * when the interval ends (the latest failure's fields, with `suppressed`: how many were left out).
 */

export type LogLine = (fields: Record<string, unknown>, message: string) => void;

interface Kind {
  /** Until when a failure of this kind is counted rather than logged. */
  quietUntil: number;
  suppressed: number;
  /** The latest suppressed failure: what the summary line shows. */
  latest: { fields: Record<string, unknown>; message: string } | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class RepeatedLog {
  readonly #kinds = new Map<string, Kind>();
  readonly #write: LogLine;
  readonly #interval: number;

  /** @param interval milliseconds: at most one line per kind in any of them */
  constructor(write: LogLine, interval: number) {
    this.#write = write;
    this.#interval = interval;
  }

  /** Logs a failure of `kind` now, or counts it into the next summary line of that kind. */
  report(kind: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    let state = this.#kinds.get(kind);
    if (state === undefined || (now >= state.quietUntil && state.suppressed === 0)) {
      state ??= { quietUntil: 0, suppressed: 0, latest: undefined, timer: undefined };
      this.#kinds.set(kind, state);
      state.quietUntil = now + this.#interval;
      this.#write(fields, message);
      return;
    }
    state.suppressed++;
    state.latest = { fields, message };
    // Unref'd: a pending summary never keeps the process alive; flush() writes it at shutdown.
    state.timer ??= setTimeout(() => this.#summarise(kind), Math.max(0, state.quietUntil - now)).unref();
  }

  /** Writes every pending count now (at shutdown). */
  flush(): void {
    for (const kind of [...this.#kinds.keys()]) this.#summarise(kind);
  }

  /** Cancels the pending summaries without writing them. */
  stop(): void {
    for (const state of this.#kinds.values()) clearTimeout(state.timer);
    this.#kinds.clear();
  }

  #summarise(kind: string): void {
    const state = this.#kinds.get(kind);
    if (state === undefined) return;
    clearTimeout(state.timer);
    state.timer = undefined;
    if (state.suppressed === 0 || state.latest === undefined) return;
    const { fields, message } = state.latest;
    this.#write({ ...fields, suppressed: state.suppressed }, message);
    // The summary line opens the next interval: failures that go on get the next line after it.
    state.suppressed = 0;
    state.latest = undefined;
    state.quietUntil = Date.now() + this.#interval;
  }
}

/**
 * What makes two errors "the same failure": their name, code and message with the numbers taken
 * out (ports, counts and ids vary between occurrences of one failure).
 */
export function errorKind(error: unknown): string {
  if (!(error instanceof Error)) return typeof error;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return `${error.name}:${code}:${error.message.replace(/\d+/g, '#').slice(0, 200)}`;
}
