/**
 * `serve-sse/redis`: the hub's log in a Redis stream, so that every instance of a hub shares its
 * publications, ids and history. One stream per hub (one order for every instance); each entry
 * holds the topics and the event as the publishing instance formatted it; the stream's ids are
 * the events' ids. Each instance appends on one connection and reads the whole stream on another,
 * blocking: one reader per instance, whatever the number of clients.
 *
 * Trimming (`MAXLEN ~`) may remove entries an instance has not read yet (it was paused, or cut
 * off), and a Redis that restarts without its data starts the stream afresh. Neither says so to
 * the readers, so every append also counts itself: a counter beside the stream (`<key>:seq`) goes up
 * by one in the same script that appends, and the entry carries its value. A reader that finds
 * anything but the next number knows that entries went past it unread, whatever the cause, and
 * tells its hub before the entry that follows them.
 */

import { Redis, type RedisOptions } from 'ioredis';
import { consoleLogger, type Logger } from '../logger.js';
import { redisOptionError, redisTarget } from './redis-connection.js';
import type { Backplane, EntryMeta, LogListener } from './backplane.js';
import { compareLogIds, isLogId } from './log-id.js';
import {
  ALIAS_FIELD,
  BODY_FIELD,
  COUNT_FIELD,
  counterKey,
  idTime,
  infoField,
  PRIVATE_FIELD,
  rangeEntries,
  readEntries,
  toCountedEntry,
  TOPICS_FIELD,
  type StreamEntry,
} from './redis-entries.js';

export interface RedisBackplaneOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. Required unless `client` is given. */
  url?: string;
  /**
   * An ioredis client whose settings (host, TLS, password, Sentinel...) the backplane copies
   * for its own two connections. The client itself is left alone, and never closed.
   */
  client?: Redis | Redis<'resp3'>;
  /**
   * The stream's key. Hubs on the same key are one hub. Default `"serve-sse"`. The count of appends
   * is kept beside it, at `<key>:seq`: delete both or neither.
   */
  key?: string;
  /**
   * Milliseconds to wait for Redis: to open (the hub then serves without the shared history
   * while the backplane keeps trying), and for each publication to be acknowledged. Default 5000.
   */
  connectTimeout?: number;
  /**
   * Entries the stream keeps, at least (trimming is approximate: Redis drops whole nodes): how
   * far back an instance cut off from Redis can catch up. Default: the hub's `history`.
   */
  maxLength?: number;
  /** Where connection trouble and skipped entries are reported. Default: the console. */
  logger?: Logger;
}

/** Entries per XREAD: how much one round trip delivers when catching up. */
const BATCH = 1000;
/** How long one XREAD waits for new entries before asking again. */
const BLOCK_MS = 5000;
/** An XREAD answered with entries sooner than this (ms), or with more than one, means a busy stream. */
const BUSY_REPLY_MS = 1;
/**
 * How long (ms) the next XREAD of a busy stream waits to gather what comes: the first time 1 ms,
 * doubled while the stream stays busy, up to this. A round trip to Redis costs a reader about as
 * much CPU as writing one batch to a hundred clients, and each read is a batch the hub writes to
 * every client: at thousands of events a second, fewer reads with more in each is what keeps an
 * instance from falling behind. A stream read at the pace of its events (an XREAD that had to
 * wait) is read without delay.
 */
const READ_GATHER_MAX_MS = 4;
/** Reconnection backoff, capped so that an instance catches up soon after Redis is back. */
const RETRY_CAP_MS = 1000;
/**
 * At most this many appends per script call, and about this many characters of events: a call
 * holds Redis (every other client waits) while it runs, and a longer queue goes as several calls.
 */
const APPENDS_PER_CALL = 1000;
const CHARS_PER_CALL = 1 << 20;
/** The longest (ms) that appends wait for others to join them in a call (see `#schedule`). */
const GATHER_MS = 1;
/** Appends sent at once after a gathering that found nothing to add (a publisher awaiting each). */
const UNGATHERED_AFTER_NOTHING = 8;

/**
 * How far ahead of this machine's clock an id may be and still be this log's: ids carry the Redis
 * server's clock, which may be somewhat ahead of ours, but not by minutes.
 */
const CLOCK_LEAD_MS = 60_000;

/** The reader's next step. */
type Step = 'load' | 'check' | 'read';

/**
 * Appends entries and counts each, as one atomic step: for each entry, INCR the counter (KEYS[2]),
 * then XADD to the stream (KEYS[1]) the topics, the body and the counter's new value, and the
 * event's own id and privacy when it has them. ARGV: the length to trim to, then four per entry:
 * the topics, the body, the event's own id (or empty), `1` for a private event (or empty). Replies
 * with one item per entry, in order: its id, or the error that refused it. An entry that Redis
 * refuses takes no number and stores nothing, and the entries after it are appended all the same,
 * as they would be by calls of their own.
 */
const APPEND_SCRIPT = `local replies = {}
for i = 2, #ARGV, 4 do
  local reply = redis.pcall('INCR', KEYS[2])
  if type(reply) == 'number' then
    local fields = {'${TOPICS_FIELD}', ARGV[i], '${BODY_FIELD}', ARGV[i + 1], '${COUNT_FIELD}', reply}
    if ARGV[i + 2] ~= '' then fields[#fields + 1] = '${ALIAS_FIELD}'; fields[#fields + 1] = ARGV[i + 2] end
    if ARGV[i + 3] == '1' then fields[#fields + 1] = '${PRIVATE_FIELD}'; fields[#fields + 1] = '1' end
    reply = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
    if type(reply) == 'table' and reply.err then
      -- Nothing was appended (the key holds something else, say): the number is given back, or
      -- every reader would take the next entry for one that follows a gap.
      redis.call('DECR', KEYS[2])
    end
  end
  replies[#replies + 1] = reply
end
return replies
`;
/** The script as a command of the writer's (ioredis sends it whole where Redis does not know it). */
const APPEND_COMMAND = 'serveSseAppend';

/** A writer connection with the append script defined on it. */
type Writer = Redis & { [APPEND_COMMAND](args: readonly string[]): Promise<unknown> };

/** An append waiting for its script call's reply. */
interface Pending {
  /** The script's four arguments for it. */
  readonly topics: string;
  readonly body: string;
  readonly alias: string;
  readonly private: string;
  readonly resolve: (id: string) => void;
  readonly reject: (error: Error) => void;
}

/** A backplane on the Redis stream at `key`. @throws TypeError for an invalid option */
export function redisBackplane(options: RedisBackplaneOptions): Backplane {
  return new RedisLog(options);
}

class RedisLog implements Backplane {
  readonly origin = undefined;
  readonly #key: string;
  /** The counter of appends, beside the stream. */
  readonly #counter: string;
  readonly #timeout: number;
  readonly #maxLength: number | undefined;
  readonly #logger: Logger;
  /** Where Redis is, for messages: the url without its password. */
  readonly #where: string;
  readonly #connect: (overrides: RedisOptions) => Redis;
  #writer: Writer | undefined;
  #reader: Redis | undefined;
  #listener: LogListener | undefined;
  #history = 0;
  #trimTo = '0';
  /** The id of the last entry read: where the next XREAD starts. */
  #lastId = '0-0';
  /**
   * The count of the last entry heard: the next must carry the one after it. Undefined before the
   * first, and after an entry that carries none (an older serve-sse wrote it): the next count heard
   * is then taken as the start.
   */
  #lastCount: bigint | undefined;
  /** The hub has heard of a gap and no entry since: a second report would count one gap twice. */
  #gapPending = false;
  /** The hub stopped waiting for the history: when Redis answers, only new entries go out. */
  #late = false;
  #closed = false;
  #loop: Promise<void> | undefined;
  #openTimer: ReturnType<typeof setTimeout> | undefined;
  #settleOpen: ((error?: Error) => void) | undefined;
  /** Ends the reader's current wait (for Redis, or between retries): set while it waits. */
  #wake: (() => void) | undefined;
  #down = false;
  /** The next wait between the XREADs of a busy stream (see READ_GATHER_MAX_MS); 0 when it is not busy. */
  #gatherMs = 0;
  /**
   * While the writer's first connection attempt is in progress (until it is ready, fails, or the
   * open times out): publications made meanwhile wait for it.
   */
  #starting: Promise<void> | undefined;
  #started: (() => void) | undefined;
  /**
   * Appends not sent yet. Those made while a script call is in flight (or in the same turn) go
   * together, as one call, once it is answered: one round trip and one script run for many events,
   * in the order they were made.
   */
  #queue: Pending[] = [];
  /** When the oldest queued append was made: waiting in the queue counts in its `connectTimeout`. */
  #queuedSince = 0;
  /** Script calls sent and neither answered nor given up on. */
  #inFlight = 0;
  /** A flush of the queue is scheduled (at the end of the turn, or after the first connection attempt). */
  #flushDue = false;
  /** Waiting for more appends before the next call, while they keep coming (see {@link #schedule}). */
  #gathering = false;
  /** When the gathering began, the queue's length then and at the last look, and the looks left that may find nothing new. */
  #gatherStart = 0;
  #gatherFrom = 0;
  #gathered = 0;
  #graceTurns = 0;
  /** Appends the last call (or calls, for a long queue) carried. */
  #lastCall = 1;
  /**
   * A gathering ends as soon as this many are queued: the appends that were waiting for Redis when
   * the last reply came (those it answered, and those queued meanwhile). Publishers that keep so
   * many waiting (concurrent requests, say) then send them all in one call once each has made its
   * next, rather than two calls of half as many.
   */
  #gatherTarget = 1;
  /** When the last call went out. */
  #lastSentAt = -Infinity;
  /** Appends that go at once, without gathering, after a gathering that found nothing to add. */
  #ungathered = 0;
  /** Set by close() while it waits for the queue and the calls in flight to be done with. */
  #drained: (() => void) | undefined;

  constructor(options: RedisBackplaneOptions) {
    if (options === null || typeof options !== 'object') throw optionError('options', 'an object such as { url }', options);
    const { url, client, key = 'serve-sse', connectTimeout = 5000, maxLength, logger = consoleLogger } = options;
    if (typeof key !== 'string' || key === '') throw optionError('key', 'a non-empty string', key);
    if (!(Number.isFinite(connectTimeout) && connectTimeout > 0)) throw optionError('connectTimeout', 'a positive number of milliseconds', connectTimeout);
    if (maxLength !== undefined && !(Number.isSafeInteger(maxLength) && maxLength >= 0)) {
      throw optionError('maxLength', 'a non-negative integer', maxLength);
    }
    this.#key = key;
    this.#counter = counterKey(key);
    this.#timeout = connectTimeout;
    this.#maxLength = maxLength;
    this.#logger = logger;
    const target = redisTarget(url, client, optionError);
    this.#where = target.where;
    this.#connect = target.connect;
  }

  get connected(): boolean {
    return !this.#closed && this.#writer?.status === 'ready';
  }

  open(listener: LogListener, history: number): Promise<void> {
    if (this.#listener !== undefined) return Promise.reject(new Error('serve-sse: this Redis backplane is already open; each hub needs its own'));
    this.#listener = listener;
    this.#history = history;
    this.#trimTo = String(this.#maxLength ?? history);
    // Without an offline queue, a command fails at once while Redis is away instead of piling
    // up, and with no retries, one cut off mid-flight fails instead of hanging. A client copied
    // with lazyConnect would never connect: nothing here ever calls connect().
    const common: RedisOptions = {
      lazyConnect: false,
      connectTimeout: this.#timeout,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      replyMapping: 'legacy',
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, RETRY_CAP_MS) + Math.random() * 100,
    };
    const writer = this.#connect({ ...common, commandTimeout: this.#timeout, connectionName: 'serve-sse-append' }) as Writer;
    // EVALSHA, and the whole script where Redis does not have it (a new connection, a restart).
    writer.defineCommand(APPEND_COMMAND, { numberOfKeys: 2, lua: APPEND_SCRIPT });
    this.#writer = writer;
    const reader = (this.#reader = this.#connect({ ...common, connectionName: 'serve-sse-read' }));
    // Errors are expected while Redis is away: the reader reports outages, the writer's failures
    // reach publishers through append().
    writer.on('error', () => {});
    this.#starting = new Promise<void>((resolve) => {
      this.#started = () => {
        this.#starting = this.#started = undefined;
        resolve();
      };
    });
    // The first attempt decides: once it has failed (refused, say), publishers hear so at once
    // rather than wait out the timeout, which remains the bound for a host that never answers.
    const started = (): void => this.#started?.();
    writer.once('ready', started).once('close', started).once('end', started);
    this.#watch(reader);
    return new Promise<void>((resolve, reject) => {
      this.#settleOpen = (error) => {
        this.#settleOpen = undefined;
        clearTimeout(this.#openTimer);
        if (error === undefined) resolve();
        else reject(error);
      };
      this.#openTimer = setTimeout(() => {
        this.#late = true;
        this.#started?.();
        this.#settleOpen?.(
          new Error(`serve-sse: Redis at ${this.#where} did not answer within ${this.#timeout} ms; serving without the shared history, and retrying`),
        );
      }, this.#timeout);
      this.#loop = this.#run(reader);
    });
  }

  append(topics: readonly string[], body: string, meta: EntryMeta = {}): Promise<string> {
    const writer = this.#writer;
    if (writer === undefined || this.#closed) return Promise.reject(new Error('serve-sse: the Redis backplane is not open'));
    // A hub publishes as soon as it is made: while the first connection attempt is in progress,
    // appends wait for it in the queue.
    if (this.#starting === undefined && writer.status !== 'ready') return Promise.reject(this.#unreachable());
    return new Promise<string>((resolve, reject) => {
      if (this.#queue.length === 0) this.#queuedSince = performance.now();
      this.#queue.push({ topics: JSON.stringify(topics), body, alias: meta.alias ?? '', private: meta.private === true ? '1' : '', resolve, reject });
      this.#schedule(false);
    });
  }

  /**
   * Decides when the queue goes. Appends made while a call is in flight wait for its reply; appends
   * made in one turn go together. Beyond that, a call is a round trip, which costs both ends far
   * more than an entry does, so appends that come in a stream are gathered: after a reply with
   * appends waiting, or when a call went out less than {@link GATHER_MS} ago, the queue waits while
   * each turn of the event loop brings more (one turn that brings none is allowed), for
   * GATHER_MS at most, or until it holds as many as were waiting for Redis when the last reply
   * came (see {@link #gatherTarget}). An append after a pause goes at the end of its turn. A
   * publisher that awaits each publication finds nothing to gather: then the next few go at once,
   * so that it hardly ever waits a turn.
   */
  #schedule(answered: boolean): void {
    if (this.#inFlight > 0 || this.#flushDue) return;
    if (this.#starting !== undefined) {
      this.#flushDue = true;
      void this.#starting.then(this.#flush);
    } else if (this.#gathering) {
      if (this.#gatherTarget > 1 && this.#queue.length >= this.#gatherTarget) this.#flushSoon();
    } else if (this.#closed) {
      this.#flushSoon();
    } else if (answered) {
      this.#gather(1);
    } else if (performance.now() - this.#lastSentAt >= GATHER_MS || this.#ungathered > 0) {
      if (this.#ungathered > 0) this.#ungathered--;
      this.#flushSoon();
    } else {
      this.#gather(1);
    }
  }

  #flushSoon(): void {
    this.#flushDue = true;
    queueMicrotask(this.#flush);
  }

  #gather(graceTurns: number): void {
    this.#gathering = true;
    this.#gatherStart = performance.now();
    this.#gatherFrom = this.#gathered = this.#queue.length;
    this.#graceTurns = graceTurns;
    setImmediate(this.#gatherTurn);
  }

  /** A turn later: more came, so more may come; nothing came, or it has been long enough: the queue goes. */
  readonly #gatherTurn = (): void => {
    if (!this.#gathering) return;
    const queued = this.#queue.length;
    if (performance.now() - this.#gatherStart < GATHER_MS && (queued > this.#gathered || this.#graceTurns-- > 0)) {
      this.#gathered = queued;
      setImmediate(this.#gatherTurn);
      return;
    }
    if (queued === this.#gatherFrom) this.#ungathered = UNGATHERED_AFTER_NOTHING;
    this.#flush();
  };

  /**
   * Sends what is queued, unless a call is in flight: as one script call, or a few when the queue
   * is long, sent at once. Redis runs a connection's commands in order, so the log's order is the
   * order of the appends.
   */
  readonly #flush = (): void => {
    this.#flushDue = false;
    this.#gathering = false;
    if (this.#inFlight > 0) return;
    const queue = this.#queue;
    if (queue.length === 0) {
      this.#drained?.();
      return;
    }
    this.#queue = [];
    const writer = this.#writer!;
    if (writer.status !== 'ready') {
      // Never sent: nothing was stored.
      for (const pending of queue) pending.reject(this.#closed ? new Error('serve-sse: the Redis backplane is not open') : this.#unreachable());
      this.#drained?.();
      return;
    }
    this.#lastCall = queue.length;
    this.#lastSentAt = performance.now();
    // What the oldest has waited comes off the time Redis has to confirm.
    const budget = Math.max(1, this.#timeout - (performance.now() - this.#queuedSince));
    for (let start = 0; start < queue.length; ) {
      let end = start + 1;
      let chars = queue[start]!.body.length;
      while (end < queue.length && end - start < APPENDS_PER_CALL && (chars += queue[end]!.body.length) <= CHARS_PER_CALL) end++;
      this.#send(writer, start === 0 && end === queue.length ? queue : queue.slice(start, end), budget);
      start = end;
    }
  };

  /** One script call for `batch`; each append settles with its own reply, or all with the call's failure. */
  #send(writer: Writer, batch: Pending[], budget: number): void {
    const args: string[] = [this.#key, this.#counter, this.#trimTo];
    for (const pending of batch) args.push(pending.topics, pending.body, pending.alias, pending.private);
    this.#inFlight++;
    let settled = false;
    const settle = (reply: unknown, error: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.#inFlight--;
      if (error !== undefined) {
        for (const pending of batch) pending.reject(this.#failed(error));
      } else if (!Array.isArray(reply) || reply.length !== batch.length) {
        for (const pending of batch) pending.reject(this.#unexpected(reply));
      } else {
        for (let i = 0; i < batch.length; i++) {
          const item: unknown = reply[i];
          if (typeof item === 'string') batch[i]!.resolve(item);
          else batch[i]!.reject(item instanceof Error ? this.#failed(item) : this.#unexpected(item));
        }
      }
      if (this.#inFlight > 0) return;
      this.#gatherTarget = this.#lastCall + this.#queue.length;
      if (this.#queue.length === 0) this.#drained?.();
      else this.#schedule(true);
    };
    // Past the budget, the call's appends are given up on (the reply, if it comes, changes nothing).
    const timer = setTimeout(() => settle(undefined, new Error('Command timed out')), budget);
    writer[APPEND_COMMAND](args).then(
      (reply) => settle(reply, undefined),
      (error: Error) => settle(undefined, error),
    );
  }

  #unreachable(): Error {
    return new Error(`serve-sse: Redis at ${this.#where} is unreachable; the event was not published`);
  }

  /** Refused: not stored. Cut off or timed out: Redis may have stored it before the reply was lost. */
  #failed(error: Error): Error {
    const fate = error.name === 'ReplyError' ? 'refused the event' : 'did not confirm the event (it may or may not be stored)';
    return new Error(`serve-sse: Redis at ${this.#where} ${fate}: ${error.message}`, { cause: error });
  }

  #unexpected(reply: unknown): Error {
    return new Error(`serve-sse: unexpected reply from Redis at ${this.#where} to the append script: ${String(reply)}`);
  }

  /** Whether `id` may be an entry of the log that this instance has not heard yet (it lags behind the log): a client that resumes from such an id waits for the instance to catch up instead of being reset. */
  mayBeAhead(id: string): boolean {
    // Redis puts its clock in the id: one far in the future is no id of this log's.
    return isLogId(id) && idTime(id) <= Date.now() + CLOCK_LEAD_MS;
  }

  /** The newest entry's id, read on the writer's connection (the reader's is blocked in XREAD). */
  async head(): Promise<string | undefined> {
    const writer = this.#writer;
    if (writer === undefined || this.#closed || writer.status !== 'ready') throw new Error(`serve-sse: Redis at ${this.#where} is unreachable`);
    return rangeEntries(await writer.call('XREVRANGE', [this.#key, '+', '-', 'COUNT', 1]))[0]?.id;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // The hub is going away: nothing waits for the history any more.
    this.#settleOpen?.();
    this.#started?.();
    this.#wake?.();
    // A blocked XREAD would hold QUIT for seconds: the reading connection is simply dropped.
    this.#reader?.disconnect();
    const writer = this.#writer;
    if (writer !== undefined) {
      // Appends made before close() still go out (or fail), within connectTimeout.
      if (this.#gathering) this.#flush();
      if (this.#inFlight > 0 || this.#queue.length > 0 || this.#flushDue) {
        await new Promise<void>((resolve) => (this.#drained = resolve));
        this.#drained = undefined;
      }
      // QUIT lets publications in flight finish; a connection that is down has nothing to finish.
      if (writer.status === 'ready') await writer.quit().catch(() => writer.disconnect());
      else writer.disconnect();
    }
    await this.#loop;
  }

  /** Reports outages once each, rather than once per reconnection attempt. */
  #watch(reader: Redis): void {
    let lastError = '';
    let connectedOnce = false;
    reader.on('error', (error: Error) => (lastError = error.message));
    reader.on('close', () => {
      if (this.#closed || this.#down) return;
      this.#down = true;
      this.#logger.warn(
        { redis: this.#where, error: lastError || undefined },
        `serve-sse: ${connectedOnce ? 'lost the connection to' : 'cannot reach'} Redis; serving on, publishing fails until it is back`,
      );
    });
    reader.on('ready', () => {
      connectedOnce = true;
      if (!this.#down) return;
      this.#down = false;
      lastError = '';
      this.#logger.info({ redis: this.#where }, 'serve-sse: reconnected to Redis; catching up');
    });
  }

  /**
   * The reader: loads the history, then reads every new entry in stream order, checking each
   * entry's count against the last (see {@link #deliver}). After any failure it waits for Redis
   * and checks that nothing it has not read was trimmed before it resumes from the last id it
   * read: that tells of a stream deleted or emptied while the instance was away even before a new
   * entry shows the count out of step.
   */
  async #run(reader: Redis): Promise<void> {
    let step: Step = 'load';
    let failures = 0;
    while (!this.#closed) {
      if (reader.status !== 'ready') {
        // Cut off between two reads: what was trimmed meanwhile must be checked as after a failed read.
        if (step === 'read') step = 'check';
        await this.#waitFor(reader, 'ready');
        continue;
      }
      try {
        if (step === 'load') await this.#load(reader);
        else if (step === 'check') await this.#check(reader);
        else await this.#read(reader);
        if (step === 'read') failures = 0;
        else step = 'read';
      } catch (error) {
        if (this.#closed) break;
        if (step === 'read') step = 'check';
        // A refusal on a live connection (the key holds something else, say) would repeat at
        // once: wait a little, and say so once.
        if (reader.status === 'ready') {
          if (failures++ === 0) this.#logger.warn({ redis: this.#where, key: this.#key, error: (error as Error).message }, 'serve-sse: reading the Redis stream failed; retrying');
          await this.#waitFor(reader, Math.min(100 * 2 ** failures, RETRY_CAP_MS));
        }
      }
    }
  }

  /**
   * The last `history` entries, oldest first, for the hub's replay, and the one before them: the
   * hub keeps only `history`, and learns from the one it drops that a client holding that id
   * missed nothing it keeps. Reading starts after the newest.
   */
  async #load(reader: Redis): Promise<void> {
    const reply = await reader.call('XREVRANGE', [this.#key, '+', '-', 'COUNT', this.#late ? 1 : this.#history + 1]);
    const newestFirst = rangeEntries(reply);
    // From the last id read, never `$`: that would skip what is appended before the first XREAD.
    const newest = newestFirst[0]?.id ?? '0-0';
    if (this.#late) {
      // The hub is serving already: old entries would reach its clients as new ones. Whatever
      // this instance's clients missed meanwhile cannot be replayed. The count starts afresh
      // after the gap.
      this.#lostEntries();
      this.#lastCount = undefined;
    } else {
      for (const entry of newestFirst.reverse()) this.#deliver(entry);
    }
    this.#lastId = newest;
    this.#settleOpen?.();
  }

  /**
   * After an interruption: were entries after the last one read removed meanwhile? Then the hub
   * must hear of the gap before the entries that follow it.
   */
  async #check(reader: Redis): Promise<void> {
    const last = this.#lastId;
    let info: unknown;
    try {
      info = await reader.call('XINFO', ['STREAM', this.#key]);
    } catch (error) {
      if (!/no such key/i.test((error as Error).message)) throw error;
      // The stream is gone (deleted, or Redis lost its data): anything read before may have had successors.
      if (last !== '0-0') this.#lostEntries();
      return;
    }
    const kept = rangeEntries(last === '0-0' ? [] : await reader.call('XRANGE', [this.#key, last, last])).length > 0;
    const deleted = infoField(info, 'max-deleted-entry-id');
    let gap: boolean;
    if (typeof deleted === 'string') {
      // Redis 7: the highest id ever trimmed or deleted. Past ours, something unread is gone; below
      // ours while ours is missing, the stream was recreated.
      gap = kept ? compareLogIds(deleted, last) > 0 : deleted !== last;
    } else {
      gap = !kept && last !== '0-0';
    }
    if (gap) this.#lostEntries();
  }

  async #read(reader: Redis): Promise<void> {
    // A connection that died silently would leave XREAD waiting for ever: past its block time
    // (and a margin), it is dropped and made again.
    const watchdog = setTimeout(() => reader.disconnect(true), BLOCK_MS + this.#timeout);
    const asked = performance.now();
    let reply: unknown;
    try {
      reply = await reader.call('XREAD', ['COUNT', BATCH, 'BLOCK', BLOCK_MS, 'STREAMS', this.#key, this.#lastId]);
    } finally {
      clearTimeout(watchdog);
    }
    if (this.#closed) return;
    const entries = readEntries(reply);
    for (const entry of entries) this.#deliver(entry);
    // Entries were there at once, or several had come since the last read: they are coming faster
    // than one read each. The next read waits a
    // moment (longer while it stays so, see READ_GATHER_MAX_MS), so that it brings what came
    // meanwhile in one reply, and the hub writes it to each client at once, rather than a read
    // (and a write per client) for every entry or two. A full reply is a backlog: read on at once.
    if (entries.length > 0 && entries.length < BATCH && (entries.length > 1 || performance.now() - asked < BUSY_REPLY_MS)) {
      this.#gatherMs = Math.min(READ_GATHER_MAX_MS, Math.max(1, 2 * this.#gatherMs));
      await this.#waitFor(reader, this.#gatherMs);
    } else {
      this.#gatherMs = 0;
    }
  }

  /**
   * Hands the hub an entry read (from the history, a read, or a catch-up), after checking that its
   * count follows the last one heard. Any other count means entries this instance will never read:
   * trimmed before it read them (a jump), or a counter that started again (Redis restarted empty,
   * or the keys were deleted). The hub hears of the gap before the entry, so that its clients get
   * a reset ahead of it.
   */
  #deliver(stored: StreamEntry): void {
    // Past a skipped entry too, or it would be read again and again.
    this.#lastId = stored.id;
    const parsed = toCountedEntry(stored);
    if (typeof parsed === 'string') {
      // Skipped, so not counted. A foreign entry carries no count, and the count goes on across
      // it; one that carries a count yet cannot be delivered is an event the clients miss, and
      // the next count reports it as a gap.
      this.#logger.warn({ redis: this.#where, key: this.#key, id: stored.id }, `serve-sse: skipped a stream entry that serve-sse did not write: ${parsed}`);
      return;
    }
    const { entry, count } = parsed;
    if (count !== undefined && this.#lastCount !== undefined && count !== this.#lastCount + 1n) this.#lostEntries();
    this.#lastCount = count;
    this.#gapPending = false;
    this.#listener?.receive(entry);
  }

  /** Tells the hub that entries are missing before the next one it hears, once per gap. */
  #lostEntries(): void {
    if (this.#gapPending) return;
    this.#gapPending = true;
    this.#listener?.lost();
  }

  /** Waits for the connection's event, or `ms`; close() ends either wait at once. */
  #waitFor(reader: Redis, until: 'ready' | number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        clearTimeout(timer);
        reader.off('ready', done);
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
      if (until === 'ready') reader.once('ready', done);
      else timer = setTimeout(done, until);
    });
  }
}

function optionError(name: string, expected: string, value: unknown): TypeError {
  return redisOptionError('redisBackplane', name, expected, value);
}

export { redisPresence, type RedisPresenceOptions } from './redis-presence.js';
