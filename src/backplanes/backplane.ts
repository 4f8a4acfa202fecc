/**
 * What a hub publishes through: one ordered log of events shared by every instance of the hub.
 * The hub appends to it and hears back every entry, its own included, in log order; ids are the
 * log's, so they agree wherever a client reconnects. The hub keeps the recent entries it heard as
 * its replay history, which is why a backplane has no read API beyond the feed.
 */

/** One event in the log. */
export interface LogEntry {
  /** Assigned by the log: `<number>-<number>`, increasing in log order. */
  readonly id: string;
  readonly topics: readonly string[];
  /** The event as formatted by the hub, without its `id:` line (which the log decides). */
  readonly body: string;
  /** When the entry entered the log (ms since the epoch): replay age and backplane lag. */
  readonly time: number;
  /** The event's id on the wire, when its publisher chose one; otherwise the wire id is {@link id}. */
  readonly alias?: string;
  /** Only subscribers allowed to see private events of one of its topics receive it. */
  readonly private?: boolean;
}

/** What an append carries besides the topics and the body. */
export interface EntryMeta {
  /** The event's id on the wire, chosen by its publisher (see {@link LogEntry.alias}). */
  readonly alias?: string;
  readonly private?: boolean;
}

/** How a backplane talks to the hub it serves. */
export interface LogListener {
  /** Entries, in log order, each once: recent history when opening, then every new one. */
  receive(entry: LogEntry): void;
  /**
   * Entries may be missing before the next one received (the log was trimmed past this
   * instance while it was cut off): history cannot replay across the gap, and the hub's live
   * clients get a reset event ahead of that next entry.
   */
  lost(): void;
}

export interface Backplane {
  /**
   * Starts the feed. `history` is how many recent entries the hub keeps: the backplane delivers
   * existing ones first, oldest first. It may deliver more (the hub keeps the last `history`):
   * one more is useful, since the id just before the oldest kept is one a client can resume from. A promise delays subscriptions until it settles, so
   * that replay sees the shared history; a rejection is logged and the hub serves what it has.
   */
  open(listener: LogListener, history: number): void | Promise<void>;
  /** Appends an event; resolves with its id once the log holds it. `meta` travels with the entry. */
  append(topics: readonly string[], body: string, meta?: EntryMeta): Promise<string>;
  /** Whether appends can currently succeed. */
  readonly connected: boolean;
  /**
   * Ids below this one predate the log: a client that has one is told `unknown`, not `expired`.
   * Undefined when the log's start is unknown.
   */
  readonly origin?: string;
  /**
   * Whether `id` may be an entry of the log that this instance has not heard yet (it lags behind
   * the log): a client that resumes from such an id waits for the instance to catch up instead of
   * being reset. Absent: never, as for a log that delivers every append before it resolves.
   */
  mayBeAhead?(id: string): boolean;
  /**
   * The id of the newest entry of the log as it is now (or `undefined` when it is empty): a client
   * resuming from an id this instance does not know, and that may not be a log id (a publisher's
   * own), waits until this instance has heard up to here before it is told the id is unknown.
   * Absent, as for a log that delivers every append before it resolves: unknown ids are unknown.
   */
  head?(): Promise<string | undefined>;
  /** Stops the feed and releases connections. */
  close(): Promise<void>;
}
