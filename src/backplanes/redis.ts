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

import { createHash } from 'node:crypto';
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
const BATCH = 500;
/** How long one XREAD waits for new entries before asking again. */
const BLOCK_MS = 5000;
/** Reconnection backoff, capped so that an instance catches up soon after Redis is back. */
const RETRY_CAP_MS = 1000;

/**
 * How far ahead of this machine's clock an id may be and still be this log's: ids carry the Redis
 * server's clock, which may be somewhat ahead of ours, but not by minutes.
 */
const CLOCK_LEAD_MS = 60_000;

/** The reader's next step. */
type Step = 'load' | 'check' | 'read';

/**
 * Appends one entry and counts it, as one atomic step: INCR the counter (KEYS[2]), then XADD to the
 * stream (KEYS[1]) the topics, the body and the counter's new value, and the event's own id and
 * privacy when it has them. ARGV: the length to trim to, the topics, the body, the event's own id
 * (or empty), `1` for a private event (or empty). Replies with the entry's id.
 */
const APPEND_SCRIPT = `local count = redis.call('INCR', KEYS[2])
local fields = {'${TOPICS_FIELD}', ARGV[2], '${BODY_FIELD}', ARGV[3], '${COUNT_FIELD}', count}
if ARGV[4] ~= '' then table.insert(fields, '${ALIAS_FIELD}'); table.insert(fields, ARGV[4]) end
if ARGV[5] == '1' then table.insert(fields, '${PRIVATE_FIELD}'); table.insert(fields, '1') end
local id = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
if type(id) == 'table' and id.err then
  -- Nothing was appended (the key holds something else, say): the number is given back, or
  -- every reader would take the next entry for one that follows a gap.
  redis.call('DECR', KEYS[2])
end
return id
`;
/** What EVALSHA knows the script by, once Redis has seen it. */
const APPEND_SHA = createHash('sha1').update(APPEND_SCRIPT).digest('hex');

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
  #writer: Redis | undefined;
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
  /**
   * While the writer's first connection attempt is in progress (until it is ready, fails, or the
   * open times out): publications made meanwhile wait for it.
   */
  #starting: Promise<void> | undefined;
  #started: (() => void) | undefined;

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
    const writer = (this.#writer = this.#connect({ ...common, commandTimeout: this.#timeout, connectionName: 'serve-sse-append' }));
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

  async append(topics: readonly string[], body: string, meta: EntryMeta = {}): Promise<string> {
    // A hub publishes as soon as it is made: the first connection is worth waiting for.
    if (this.#starting !== undefined) await this.#starting;
    const writer = this.#writer;
    if (writer === undefined || this.#closed) throw new Error('serve-sse: the Redis backplane is not open');
    if (writer.status !== 'ready') {
      throw new Error(`serve-sse: Redis at ${this.#where} is unreachable; the event was not published`);
    }
    const args = [2, this.#key, this.#counter, this.#trimTo, JSON.stringify(topics), body, meta.alias ?? '', meta.private === true ? '1' : ''];
    return writer.call('EVALSHA', [APPEND_SHA, ...args]).then(
      undefined,
      // Redis has not seen the script (it restarted, or its scripts were flushed): nothing ran, so
      // sending it whole is safe.
      (error: Error) => (error.name === 'ReplyError' && error.message.startsWith('NOSCRIPT') ? writer.call('EVAL', [APPEND_SCRIPT, ...args]) : Promise.reject(error)),
    ).then(
      (id) => {
        if (typeof id !== 'string') throw new Error(`serve-sse: unexpected reply from Redis at ${this.#where} to the append script: ${String(id)}`);
        return id;
      },
      (error: Error) => {
        // Refused: not stored. Cut off or timed out: Redis may have stored it before the reply was lost.
        const fate = error.name === 'ReplyError' ? 'refused the event' : 'did not confirm the event (it may or may not be stored)';
        throw new Error(`serve-sse: Redis at ${this.#where} ${fate}: ${error.message}`, { cause: error });
      },
    );
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
    let reply: unknown;
    try {
      reply = await reader.call('XREAD', ['COUNT', BATCH, 'BLOCK', BLOCK_MS, 'STREAMS', this.#key, this.#lastId]);
    } finally {
      clearTimeout(watchdog);
    }
    if (this.#closed) return;
    for (const entry of readEntries(reply)) this.#deliver(entry);
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
