/**
 * Presence shared through Redis: every instance on the same key lists the subscriptions of all,
 * and the subscriptions of an instance that dies leave the list within a bounded time, reported
 * once to one survivor.
 *
 * ## Layout (for a `key`, `"serve-sse"` by default, as the backplane's)
 * - Each instance has a random id (a UUID, new at every start: {@link RedisPresence.instance}).
 * - `<key>:presence:<instance>`: a hash of that instance's entries, field = the entry's id,
 *   value = the entry as JSON (`{"id","group","data"}`). Missing when the instance has none.
 * - `<key>:instances`: a sorted set, member = instance id, score = the time (Redis's clock, ms)
 *   after which the instance counts as dead: its last heartbeat plus 3 heartbeats.
 * - Safety expiries, so that nothing stays if every instance dies: each hash expires 10
 *   heartbeats after its instance's last heartbeat or write, and the sorted set 10 heartbeats
 *   (of the slowest instance) after the last heartbeat of any.
 *
 * ## Writes
 * `add` and `remove` change this instance's entries in memory at once and mark the id; one
 * writer per instance sends what changed since its last write in one script call (per 5,000
 * entries), while nothing else is in flight: changes made during a write go out together in the
 * next. 10,000 subscribers connecting at once cost a few commands, not 10,000. The write script
 * refuses to write for an instance that is not in the sorted set (it was reaped): the instance
 * then writes its whole hash again and registers anew.
 *
 * ## Heartbeat and reaping
 * Every `heartbeatMs`, one script (one command) moves this instance's score to now + 3
 * heartbeats, refreshes the expiries, and reaps: every member whose score has passed is removed
 * from the sorted set, and its hash is read and deleted, all atomically in the same script, so
 * exactly one of the instances that try gets the entries and calls its `onExpired` listeners. The
 * script also tells how long until the next other instance's score passes: when that comes
 * before this instance's next heartbeat (which only happens for an instance that has stopped
 * beating, or that beats faster), a timer runs the script again at that moment, so that a dead
 * instance is reported when it leaves the list rather than up to a heartbeat later. An instance
 * with no listener leaves a dead instance to others until its hash has expired anyway (10
 * heartbeats), so that entries are not lost to an instance that cannot report them.
 *
 * ## Clock
 * Every time is Redis's (`TIME`, inside the scripts): scores are written and compared by one
 * clock, so skew between the instances' clocks cannot make one instance take another for dead, or
 * keep a dead one alive. Only the heartbeat's period is timed locally.
 *
 * ## Bounds, with `h` = heartbeatMs
 * - A change made on one instance shows on the others once its write lands: one round trip after
 *   the current write, if one is in flight. The instance's own changes show in its own `list()` at
 *   once (they are read from memory).
 * - An instance that dies leaves `list()` at most 3 h after its last heartbeat, so at most 3 h
 *   after it died; a survivor reaps it and calls `onExpired` at that moment too (its timer, and
 *   a round trip, later; at worst at its next heartbeat, so within 4 h). Measured with h = 200 ms:
 *   out of the list about 580 ms after SIGKILL, reported about 600 ms after. A reaper that dies
 *   at that moment takes the entries along: at most once.
 * - An event loop blocked (or a connection stalled) for 3 h looks like a death; the instance then
 *   writes itself back (and tells its `onRestored` listeners) as after a cut.
 *
 * ## While Redis is unreachable
 * The instance keeps its entries in memory; `list()` rejects. When Redis is back, it writes what
 * changed meanwhile, or, if a survivor reaped it meanwhile (a cut longer than 3 h), its whole hash:
 * a partitioned instance's subscriptions are then reported ended (by the survivor's `onExpired`)
 * and come back in the list when it returns, when its own `onRestored` listeners hear of them.
 * A cut that ends before 3 h costs nothing but the writes of what changed.
 *
 * Redis Cluster is not supported: the scripts touch the hashes of other instances, which are in
 * other slots.
 */

import { createHash, randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { consoleLogger, type Logger } from '../logger.js';
import { redisOptionError, redisTarget } from './redis-connection.js';
import { checkFilter, matches, parseEntry, snapshot, type Presence, type PresenceEntry, type PresenceFilter } from './presence.js';

export interface RedisPresenceOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. Required unless `client` is given. */
  url?: string;
  /**
   * An ioredis client whose settings the presence copies for its own connection. The client
   * itself is left alone, and never closed.
   */
  client?: Redis | Redis<'resp3'>;
  /**
   * What the keys start with (see the layout above). Instances on the same key share their
   * entries. Default `"serve-sse"`, as the backplane's.
   */
  key?: string;
  /**
   * Milliseconds between heartbeats: an instance that dies leaves the list within 3, and is reported
   * to `onExpired` within 4. Default 5000.
   */
  heartbeatMs?: number;
  /** Milliseconds to wait for Redis to connect and to answer each command. Default 5000. */
  connectTimeout?: number;
  /** Where connection trouble is reported. Default: the console. */
  logger?: Logger;
}

/** Presence on Redis, with the instance's id. */
export interface RedisPresence extends Presence {
  /** This instance's id: its member in `<key>:instances`, its hash at `<key>:presence:<instance>`. */
  readonly instance: string;
}

/** An instance is dead this many heartbeats after its last. */
const TTL_BEATS = 3;
/** Hashes (and the sorted set) expire this many heartbeats after their last refresh. */
const KEEP_BEATS = 10;
/** Entries per script call: bounds how long one call holds Redis, and its size. */
const CHUNK = 5000;
/** Dead instances one heartbeat reaps, at most (the next heartbeat reaps more). */
const REAP_LIMIT = 100;
/** Retry backoff after a refusal on a live connection, and the reconnection cap. */
const RETRY_CAP_MS = 1000;

/**
 * Shared by the scripts: Redis's clock in ms, and HSET / HDEL over a range of ARGV in slices
 * (Lua's `unpack` takes a few thousand values at most).
 */
const PRELUDE = `if redis.replicate_commands then redis.replicate_commands() end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ranged(command, key, from, to)
  local i = from
  while i <= to do
    local j = math.min(i + 3999, to)
    redis.call(command, key, unpack(ARGV, i, j))
    i = j + 1
  end
end
local function keepSet(set, keep)
  if redis.call('PTTL', set) < keep then redis.call('PEXPIRE', set, keep) end
end
`;

/**
 * Registers this instance with a fresh hash. KEYS: the sorted set, the instance's hash. ARGV: the
 * instance, ttl, keep, then id/json pairs.
 */
const REGISTER_SCRIPT = `${PRELUDE}
redis.call('DEL', KEYS[2])
ranged('HSET', KEYS[2], 4, #ARGV)
redis.call('ZADD', KEYS[1], now() + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
keepSet(KEYS[1], tonumber(ARGV[3]))
return 1
`;

/**
 * Writes changes, unless the instance is not registered (reaped): replies 0 then, 1 otherwise.
 * KEYS: the sorted set, the instance's hash. ARGV: the instance, keep, the number n of entries to
 * set, their 2n id/json pairs, then the ids to delete.
 */
const WRITE_SCRIPT = `${PRELUDE}
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local count = tonumber(ARGV[3])
ranged('HSET', KEYS[2], 4, 3 + 2 * count)
ranged('HDEL', KEYS[2], 4 + 2 * count, #ARGV)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`;

/**
 * The heartbeat and the reaper. KEYS: the sorted set, the instance's hash. ARGV: the instance,
 * ttl, keep, the hashes' prefix, how long past its score a dead instance is left, the most to
 * reap. Replies `[registered (1 or 0), ms, instance, [json...], instance, [json...], ...]`: the
 * time until the next other instance can be reaped (-1 when there is none; its entries then
 * leave the list), and the instances reaped with their entries.
 */
const HEARTBEAT_SCRIPT = `${PRELUDE}
local t = now()
local reply = {0, -1}
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  reply[1] = 1
end
keepSet(KEYS[1], tonumber(ARGV[3]))
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t - tonumber(ARGV[5]), 'LIMIT', 0, tonumber(ARGV[6]))
for _, instance in ipairs(dead) do
  if redis.call('ZREM', KEYS[1], instance) == 1 then
    local hash = ARGV[4] .. instance
    table.insert(reply, instance)
    table.insert(reply, redis.call('HVALS', hash))
    redis.call('DEL', hash)
  end
end
local soonest = redis.call('ZRANGE', KEYS[1], 0, 1, 'WITHSCORES')
for i = 1, #soonest, 2 do
  if soonest[i] ~= ARGV[1] then
    reply[2] = math.max(0, tonumber(soonest[i + 1]) + tonumber(ARGV[5]) - t)
    break
  end
end
return reply
`;

/** The live instances (score still ahead of Redis's clock). KEYS: the sorted set. */
const LIVE_SCRIPT = `${PRELUDE}
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now(), '+inf')
`;

interface Script {
  readonly text: string;
  readonly sha: string;
}

function script(text: string): Script {
  return { text, sha: createHash('sha1').update(text).digest('hex') };
}

const REGISTER = script(REGISTER_SCRIPT);
const WRITE = script(WRITE_SCRIPT);
const HEARTBEAT = script(HEARTBEAT_SCRIPT);
const LIVE = script(LIVE_SCRIPT);

/**
 * Presence shared by every instance on `key` of one Redis (see the module's comment).
 * @throws TypeError for an invalid option
 */
export function redisPresence(options: RedisPresenceOptions): RedisPresence {
  return new RedisPresenceImpl(options);
}

class RedisPresenceImpl implements RedisPresence {
  readonly instance = randomUUID();
  readonly #set: string;
  readonly #hash: string;
  readonly #prefix: string;
  readonly #heartbeatMs: number;
  readonly #logger: Logger;
  readonly #where: string;
  readonly #redis: Redis;
  /** This instance's entries, with their JSON: the truth, which Redis follows. */
  readonly #entries = new Map<string, { entry: PresenceEntry; json: string }>();
  /** Ids changed since they were last written. */
  #dirty = new Set<string>();
  /** The hash must be written whole, and the instance registered (at start, and once reaped). */
  #rewrite = true;
  #beatDue = true;
  /** Registered once already: being found unregistered again means that it was reaped. */
  #registered = false;
  readonly #listeners: Array<(entries: PresenceEntry[]) => void> = [];
  readonly #restoredListeners: Array<(entries: PresenceEntry[]) => void> = [];
  #closed = false;
  #down = false;
  #failures = 0;
  /** Whether the writer runs. */
  #running = false;
  /** The writer's last run: what close() waits for. */
  #working: Promise<void> | undefined;
  #kickScheduled = false;
  /**
   * While the first connection attempt is in progress (until it is ready, or fails): list() waits
   * for it rather than reject while Redis may be about to answer.
   */
  #starting: Promise<void> | undefined;
  readonly #beatTimer: ReturnType<typeof setInterval>;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** The next reaping, when another instance's time comes before this one's next heartbeat. */
  #reapTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: RedisPresenceOptions) {
    if (options === null || typeof options !== 'object') throw optionError('options', 'an object such as { url }', options);
    const { url, client, key = 'serve-sse', heartbeatMs = 5000, connectTimeout = 5000, logger = consoleLogger } = options;
    if (typeof key !== 'string' || key === '') throw optionError('key', 'a non-empty string', key);
    if (!(Number.isFinite(heartbeatMs) && heartbeatMs >= 10)) throw optionError('heartbeatMs', 'a number of milliseconds, at least 10', heartbeatMs);
    if (!(Number.isFinite(connectTimeout) && connectTimeout > 0)) throw optionError('connectTimeout', 'a positive number of milliseconds', connectTimeout);
    this.#set = `${key}:instances`;
    this.#prefix = `${key}:presence:`;
    this.#hash = this.#prefix + this.instance;
    this.#heartbeatMs = heartbeatMs;
    this.#logger = logger;
    // As the backplane's connections: commands fail at once while Redis is away rather than
    // pile up (the writer keeps what changed and writes it when Redis is back).
    const settings: RedisOptions = {
      lazyConnect: false,
      connectTimeout,
      commandTimeout: connectTimeout,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      replyMapping: 'legacy',
      connectionName: 'serve-sse-presence',
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, RETRY_CAP_MS) + Math.random() * 100,
    };
    const target = redisTarget(url, client, optionError);
    this.#where = target.where;
    this.#redis = target.connect(settings);
    const redis = this.#redis;
    this.#starting = new Promise<void>((resolve) => {
      const started = (): void => {
        this.#starting = undefined;
        redis.off('ready', started).off('close', started).off('end', started);
        resolve();
      };
      redis.once('ready', started).once('close', started).once('end', started);
    });
    this.#watch();
    this.#beatTimer = setInterval(() => {
      this.#beatDue = true;
      this.#kick();
    }, heartbeatMs);
    this.#beatTimer.unref();
  }

  add(entry: PresenceEntry): void {
    const copy = snapshot(entry);
    if (this.#closed) return;
    this.#entries.set(copy.entry.id, copy);
    this.#changed(copy.entry.id);
  }

  remove(id: string): void {
    if (this.#closed || !this.#entries.delete(id)) return;
    this.#changed(id);
  }

  onExpired(listener: (entries: PresenceEntry[]) => void): void {
    if (typeof listener !== 'function') throw new TypeError(`serve-sse: an onExpired listener must be a function; got ${typeof listener}`);
    this.#listeners.push(listener);
  }

  onRestored(listener: (entries: PresenceEntry[]) => void): void {
    if (typeof listener !== 'function') throw new TypeError(`serve-sse: an onRestored listener must be a function; got ${typeof listener}`);
    this.#restoredListeners.push(listener);
  }

  async list(filter?: PresenceFilter): Promise<PresenceEntry[]> {
    checkFilter(filter);
    if (this.#starting !== undefined) await this.#starting;
    if (this.#closed) throw new Error('serve-sse: this presence is closed');
    const redis = this.#redis;
    if (redis.status !== 'ready') throw new Error(`serve-sse: Redis at ${this.#where} is unreachable; cannot list the subscriptions of other instances`);
    try {
      return this.#listed(await this.#read(redis, filter), filter);
    } catch (error) {
      throw new Error(`serve-sse: listing the subscriptions from Redis at ${this.#where} failed: ${(error as Error).message}`, { cause: error });
    }
  }

  /** The entries of the other live instances, as Redis holds them. */
  async #read(redis: Redis, filter: PresenceFilter | undefined): Promise<PresenceEntry[]> {
    const live = await this.#run(LIVE, [this.#set], []);
    if (!Array.isArray(live)) throw unexpected('the live instances', live);
    const others = live.filter((instance): instance is string => typeof instance === 'string' && instance !== this.instance);
    const found: PresenceEntry[] = [];
    if (others.length > 0) {
      const pipeline = redis.pipeline();
      for (const instance of others) {
        if (filter?.id !== undefined) pipeline.hget(this.#prefix + instance, filter.id);
        else pipeline.hvals(this.#prefix + instance);
      }
      const replies = (await pipeline.exec()) ?? [];
      for (const [error, reply] of replies) {
        if (error) throw error;
        for (const json of Array.isArray(reply) ? reply : [reply]) {
          const entry = parseEntry(json);
          if (entry !== undefined && matches(entry, filter)) found.push(entry);
        }
      }
    }
    return found;
  }

  /** `found` and this instance's own entries. */
  #listed(found: PresenceEntry[], filter: PresenceFilter | undefined): PresenceEntry[] {
    if (this.#closed) throw new Error('serve-sse: this presence is closed');
    // This instance's own, as they are now: what Redis holds of them may not be written yet.
    if (filter?.id !== undefined) {
      const own = this.#entries.get(filter.id);
      if (own !== undefined && matches(own.entry, filter)) found.push(own.entry);
    } else {
      for (const { entry } of this.#entries.values()) if (matches(entry, filter)) found.push(entry);
    }
    return found;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#beatTimer);
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#reapTimer);
    // The write in flight finishes first, or it could write the hash again after the delete.
    await this.#working;
    this.#entries.clear();
    this.#dirty.clear();
    const redis = this.#redis;
    if (redis.status === 'ready') {
      // Gone from the list at once, without an `onExpired`: a graceful stop is not a death. If this
      // fails, a survivor reaps the instance within 4 heartbeats, and reports its entries ended.
      await redis
        .multi()
        .zrem(this.#set, this.instance)
        .del(this.#hash)
        .exec()
        .catch((error: Error) => this.#logger.warn({ redis: this.#where, error: error.message }, 'serve-sse: could not remove this instance\'s presence from Redis; it will expire'));
      await redis.quit().catch(() => redis.disconnect());
    } else {
      redis.disconnect();
    }
  }

  #changed(id: string): void {
    this.#dirty.add(id);
    this.#kick();
  }

  /** Starts the writer on the next turn of the event loop, unless it runs or is about to. */
  #kick(): void {
    if (this.#kickScheduled || this.#running || this.#closed) return;
    this.#kickScheduled = true;
    setImmediate(() => {
      this.#kickScheduled = false;
      if (this.#running || this.#closed) return;
      this.#working = this.#work();
    });
  }

  /**
   * The writer: one step at a time, so that this instance's own commands never race: the whole
   * hash when it must, then what changed, then the heartbeat when it is due. Stops when there is
   * nothing to do, when Redis is away (the `ready` event starts it again), or after a refusal
   * (a timer starts it again).
   */
  async #work(): Promise<void> {
    this.#running = true;
    try {
      await this.#steps();
    } finally {
      // At once, not a microtask later: a change made after the last step must start a new run.
      this.#running = false;
    }
  }

  async #steps(): Promise<void> {
    while (!this.#closed && this.#redis.status === 'ready') {
      try {
        if (this.#rewrite) await this.#writeAll();
        else if (this.#dirty.size > 0) await this.#writeChanges();
        else if (this.#beatDue) {
          this.#beatDue = false;
          await this.#beat();
        } else return;
        this.#failures = 0;
      } catch (error) {
        if (this.#closed) return;
        if (this.#redis.status === 'ready') {
          if (this.#failures++ === 0) this.#logger.warn({ redis: this.#where, error: (error as Error).message }, 'serve-sse: writing presence to Redis failed; retrying');
          clearTimeout(this.#retryTimer);
          this.#retryTimer = setTimeout(() => this.#kick(), Math.min(100 * 2 ** this.#failures, RETRY_CAP_MS));
        }
        return;
      }
    }
  }

  /** Writes the whole hash, registering the instance with the first part. */
  async #writeAll(): Promise<void> {
    const all = [...this.#entries.values()];
    // Changes from here on are written after this.
    // On failure #rewrite stays: everything is written again.
    this.#dirty.clear();
    for (let i = 0; i === 0 || i < all.length; i += CHUNK) {
      const args: string[] = [];
      for (const { entry, json } of all.slice(i, i + CHUNK)) args.push(entry.id, json);
      if (i === 0) await this.#run(REGISTER, [this.#set, this.#hash], [this.instance, this.#ttl, this.#keep, ...args]);
      // Reaped between two parts (a very slow write): all over again.
      else if ((await this.#run(WRITE, [this.#set, this.#hash], [this.instance, this.#keep, String(args.length / 2), ...args])) !== 1) return;
    }
    this.#rewrite = false;
    const restored = this.#registered;
    this.#registered = true;
    if (restored) {
      // Every entry written back and not removed since, as it is now: those a survivor reported
      // ended, and those added while cut off (whose announcement may have failed too).
      const entries = all.map(({ entry }) => this.#entries.get(entry.id)?.entry).filter((entry): entry is PresenceEntry => entry !== undefined);
      if (entries.length > 0) this.#tell(this.#restoredListeners, entries, 'onRestored');
    }
  }

  /** Writes the entries changed since the last write, `CHUNK` at a time. */
  async #writeChanges(): Promise<void> {
    const ids = [...this.#dirty];
    this.#dirty = new Set();
    try {
      for (let i = 0; i < ids.length; i += CHUNK) {
        const set: string[] = [];
        const removed: string[] = [];
        for (const id of ids.slice(i, i + CHUNK)) {
          const current = this.#entries.get(id);
          if (current === undefined) removed.push(id);
          else set.push(id, current.json);
        }
        const reply = await this.#run(WRITE, [this.#set, this.#hash], [this.instance, this.#keep, String(set.length / 2), ...set, ...removed]);
        if (reply !== 1) {
          this.#reaped();
          return;
        }
      }
    } catch (error) {
      // Not known to be written (HSET and HDEL are safe to repeat): written with the next changes.
      for (const id of ids) this.#dirty.add(id);
      throw error;
    }
  }

  /** The heartbeat; reaps dead instances and tells the listeners. */
  async #beat(): Promise<void> {
    const grace = this.#listeners.length > 0 ? 0 : this.#heartbeatMs * (KEEP_BEATS - TTL_BEATS);
    const reply = await this.#run(HEARTBEAT, [this.#set, this.#hash], [this.instance, this.#ttl, this.#keep, this.#prefix, String(grace), String(REAP_LIMIT)]);
    if (!Array.isArray(reply)) throw unexpected('the heartbeat', reply);
    if (reply[0] !== 1) this.#reaped();
    // Reaped when its time comes rather than at the next heartbeat (the living beat before theirs
    // comes, so this only ever fires for the dead).
    const next = Number(reply[1]);
    clearTimeout(this.#reapTimer);
    if (next >= 0 && next < this.#heartbeatMs && !this.#closed) {
      this.#reapTimer = setTimeout(() => {
        this.#beatDue = true;
        this.#kick();
      }, next + 1);
      this.#reapTimer.unref();
    }
    for (let i = 2; i + 1 < reply.length; i += 2) {
      const values: unknown = reply[i + 1];
      const entries = (Array.isArray(values) ? values : []).map(parseEntry).filter((entry): entry is PresenceEntry => entry !== undefined);
      if (entries.length === 0) continue;
      this.#logger.info({ redis: this.#where, instance: reply[i], entries: entries.length }, 'serve-sse: an instance stopped its heartbeat; its subscriptions ended');
      this.#tell(this.#listeners, entries, 'onExpired');
    }
  }

  #tell(listeners: ReadonlyArray<(entries: PresenceEntry[]) => void>, entries: PresenceEntry[], what: string): void {
    for (const listener of listeners) {
      try {
        listener(entries);
      } catch (error) {
        this.#logger.error(error, `serve-sse: a presence ${what} listener threw`);
      }
    }
  }

  /** Found unregistered: reaped by a survivor (or its keys were deleted). The whole hash is written again. */
  #reaped(): void {
    if (this.#registered) {
      this.#logger.warn(
        { redis: this.#where, instance: this.instance, entries: this.#entries.size },
        'serve-sse: this instance was taken for dead (its heartbeat did not reach Redis in time); its subscriptions were reported ended and are written again',
      );
    }
    this.#rewrite = true;
  }

  get #ttl(): string {
    return String(this.#heartbeatMs * TTL_BEATS);
  }

  get #keep(): string {
    return String(this.#heartbeatMs * KEEP_BEATS);
  }

  /** Runs a script by its digest, or whole when Redis does not know it (nothing ran then). */
  #run(which: Script, keys: string[], args: string[]): Promise<unknown> {
    const redis = this.#redis;
    const argv = [keys.length, ...keys, ...args];
    return redis.call('EVALSHA', [which.sha, ...argv]).catch((error: Error) =>
      error.name === 'ReplyError' && error.message.startsWith('NOSCRIPT') ? redis.call('EVAL', [which.text, ...argv]) : Promise.reject(error),
    );
  }

  /** Reports outages once each; writes again (and beats at once) when Redis is back. */
  #watch(): void {
    const redis = this.#redis;
    let lastError = '';
    let connectedOnce = false;
    redis.on('error', (error: Error) => (lastError = error.message));
    redis.on('close', () => {
      if (this.#closed || this.#down) return;
      this.#down = true;
      this.#logger.warn(
        { redis: this.#where, error: lastError || undefined },
        `serve-sse: ${connectedOnce ? 'lost the connection to' : 'cannot reach'} Redis; presence kept in memory and written when it is back`,
      );
    });
    redis.on('ready', () => {
      if (this.#down) this.#logger.info({ redis: this.#where }, 'serve-sse: reconnected to Redis; writing presence again');
      connectedOnce = true;
      this.#down = false;
      lastError = '';
      this.#beatDue = true;
      this.#kick();
    });
  }
}

function unexpected(what: string, reply: unknown): Error {
  return new Error(`serve-sse: unexpected reply from Redis for ${what}: ${JSON.stringify(reply)?.slice(0, 200)}`);
}

function optionError(name: string, expected: string, value: unknown): TypeError {
  return redisOptionError('redisPresence', name, expected, value);
}
