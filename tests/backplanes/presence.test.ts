/**
 * Presence: the in-memory engine, and the Redis one against a real Redis (REDIS_URL) with several
 * instances in this process, one in a child process killed with SIGKILL, and one cut off from
 * Redis by a proxy. Every wait is bounded; the keys are deleted afterwards.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { memoryPresence, type Presence, type PresenceEntry } from '../../src/backplanes/presence.js';
import { redisPresence, type RedisPresence, type RedisPresenceOptions } from '../../src/backplanes/redis-presence.js';
import { failOnEscapedErrors, recordingLogger, waitFor } from '../helpers.js';
import { REDIS_URL, RedisProxy, redisMissing, TestKeys, withRedis } from '../redis.js';

const byId = (entries: PresenceEntry[]): PresenceEntry[] => [...entries].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
const ids = (entries: PresenceEntry[]): string[] => byId(entries).map((entry) => entry.id);

describe('memoryPresence', () => {
  test('add, list, remove, and the group and id filters', async () => {
    const presence = memoryPresence();
    presence.add({ id: 's1', group: 'books/{id}', data: { subscriber: 'a' } });
    presence.add({ id: 's2', group: 'books/{id}', data: { subscriber: 'b' } });
    presence.add({ id: 's3', group: '*', data: null });
    assert.deepEqual(ids(await presence.list()), ['s1', 's2', 's3']);
    assert.deepEqual(ids(await presence.list({ group: 'books/{id}' })), ['s1', 's2']);
    assert.deepEqual(await presence.list({ id: 's2' }), [{ id: 's2', group: 'books/{id}', data: { subscriber: 'b' } }]);
    assert.deepEqual(await presence.list({ id: 's2', group: '*' }), []);
    assert.deepEqual(await presence.list({ group: 'nobody' }), []);
    assert.deepEqual(await presence.list({ id: 'nobody' }), []);
    presence.remove('s1');
    presence.remove('unknown');
    assert.deepEqual(ids(await presence.list()), ['s2', 's3']);
    // The same id again replaces its entry.
    presence.add({ id: 's2', group: 'other', data: 2 });
    assert.deepEqual(await presence.list({ id: 's2' }), [{ id: 's2', group: 'other', data: 2 }]);
    await presence.close();
    await assert.rejects(presence.list(), /closed/);
  });

  test('entries are copied as JSON keeps them, and what is not an entry is refused', async () => {
    const presence = memoryPresence();
    const data = { when: new Date(0), list: [1], gone: undefined };
    presence.add({ id: 'x', group: 'g', data });
    data.list.push(2);
    assert.deepEqual(await presence.list(), [{ id: 'x', group: 'g', data: { when: '1970-01-01T00:00:00.000Z', list: [1] } }]);
    presence.add({ id: 'y', group: 'g', data: undefined });
    assert.deepEqual(await presence.list({ id: 'y' }), [{ id: 'y', group: 'g', data: null }]);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.throws(() => presence.add({ id: 'z', group: 'g', data: circular }), TypeError);
    assert.throws(() => presence.add({ id: 'z', group: 'g', data: 1n }), TypeError);
    assert.throws(() => presence.add({ id: '', group: 'g', data: 1 }), TypeError);
    assert.throws(() => presence.add({ id: 1, group: 'g', data: 1 } as unknown as PresenceEntry), TypeError);
    assert.throws(() => presence.add({ id: 'z', data: 1 } as unknown as PresenceEntry), TypeError);
    await assert.rejects(presence.list({ group: 1 } as never), TypeError);
    assert.deepEqual(ids(await presence.list()), ['x', 'y']);
  });
});

describe('redisPresence options', () => {
  test('invalid options are refused before anything connects', () => {
    const bad: Array<[unknown, RegExp]> = [
      [undefined, /options must be/],
      [{}, /url must be/],
      [{ url: 'http://localhost' }, /url must be/],
      [{ url: REDIS_URL, key: '' }, /key must be/],
      [{ url: REDIS_URL, heartbeatMs: 0 }, /heartbeatMs must be/],
      [{ url: REDIS_URL, heartbeatMs: Number.NaN }, /heartbeatMs must be/],
      [{ url: REDIS_URL, connectTimeout: -1 }, /connectTimeout must be/],
      [{ client: {} }, /client must be/],
    ];
    for (const [options, message] of bad) assert.throws(() => redisPresence(options as RedisPresenceOptions), (error: Error) => error instanceof TypeError && message.test(error.message));
  });
});

const noRedis = await redisMissing();
const keys = new TestKeys();
/** Undone last first, after every test of the file: presences, processes, proxies. */
const cleanups: Array<() => unknown> = [];
/** Every key under each test key (presence keeps `<key>:instances` and `<key>:presence:*`). */
const testKeys: string[] = [];
after(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  if (!noRedis) {
    await withRedis(REDIS_URL, async (redis) => {
      for (const key of testKeys) {
        const found = await redis.keys(`${key}:*`);
        if (found.length > 0) await redis.del(...found);
      }
    });
  }
  await keys.cleanUp();
});

// Nothing presence does may escape as an unhandled error, whatever happens to Redis.
failOnEscapedErrors();

function newKey(): string {
  const key = keys.key();
  testKeys.push(key);
  return key;
}

interface Instance {
  presence: RedisPresence;
  /** What its onExpired listener was called with, call by call. */
  expired: PresenceEntry[][];
  /** And its onRestored listener. */
  restored: PresenceEntry[][];
  lines: ReturnType<typeof recordingLogger>['lines'];
}

function instance(options: RedisPresenceOptions & { listen?: boolean }): Instance {
  const { logger, lines } = recordingLogger();
  const presence = redisPresence({ url: REDIS_URL, ...options, logger });
  const expired: PresenceEntry[][] = [];
  const restored: PresenceEntry[][] = [];
  if (options.listen !== false) {
    presence.onExpired((entries) => expired.push(entries));
    presence.onRestored((entries) => restored.push(entries));
  }
  cleanups.push(() => presence.close());
  return { presence, expired, restored, lines };
}

/** Waits until `presence` lists exactly `expected` (by id), polling every 10 ms; resolves with the ms it took. */
async function until(presence: Presence, expected: string[], ms: number, what: string, filter?: { group?: string }): Promise<number> {
  const start = Date.now();
  const want = JSON.stringify([...expected].sort());
  let last: string[] = [];
  await waitFor(
    async () => {
      last = ids(await presence.list(filter).catch(() => [] as PresenceEntry[]));
      return JSON.stringify(last) === want;
    },
    ms,
    `${what} (last listed: ${last.length} entries)`,
  );
  return Date.now() - start;
}

const range = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, n) => `${prefix}-${n}`);

/** A client whose connections count the commands they send (no MONITOR, no shared INFO counters). */
function countingClient(): { client: Redis; commands: () => number } {
  const base = new Redis(REDIS_URL, { lazyConnect: true });
  let count = 0;
  const duplicate = base.duplicate.bind(base);
  base.duplicate = ((override) => {
    const copy = duplicate(override);
    const send = copy.sendCommand.bind(copy);
    copy.sendCommand = (command, stream) => {
      count++;
      return send(command, stream);
    };
    return copy;
  }) as typeof base.duplicate;
  cleanups.push(() => base.disconnect());
  return { client: base, commands: () => count };
}

const CHILD = fileURLToPath(new URL('./presence-instance.ts', import.meta.url));

/** presence-instance.ts in a child process; resolves with its instance id once it has added its entries. */
async function child(env: Record<string, string>): Promise<{ child: ChildProcess; instance: string }> {
  const process_ = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanups.push(async () => {
    if (process_.exitCode !== null || process_.signalCode !== null) return;
    const exited = once(process_, 'exit');
    process_.kill('SIGKILL');
    await exited;
  });
  const timer = setTimeout(() => process_.kill('SIGKILL'), 15_000);
  try {
    const [message] = (await Promise.race([once(process_, 'message'), once(process_, 'exit')])) as [unknown];
    const instance = (message as { instance?: string } | null)?.instance;
    if (instance === undefined) throw new Error(`the child exited before it was ready (${String(message)})`);
    return { child: process_, instance };
  } finally {
    clearTimeout(timer);
  }
}

describe('redisPresence', { skip: noRedis }, () => {
  test('two instances see each other\'s entries, filtered, and their removals', async () => {
    const key = newKey();
    const a = instance({ key, heartbeatMs: 200 });
    const b = instance({ key, heartbeatMs: 200 });
    a.presence.add({ id: 'a1', group: 'books/{id}', data: { subscriber: 'alice', payload: { n: 1 } } });
    a.presence.add({ id: 'a2', group: '*', data: null });
    b.presence.add({ id: 'b1', group: 'books/{id}', data: 'bob' });
    // Its own entries, at once, even before anything reached Redis.
    assert.deepEqual(ids(await a.presence.list()).filter((id) => id.startsWith('a')), ['a1', 'a2']);
    await until(a.presence, ['a1', 'a2', 'b1'], 3000, 'A to see B');
    await until(b.presence, ['a1', 'a2', 'b1'], 3000, 'B to see A');
    assert.deepEqual(byId(await b.presence.list({ group: 'books/{id}' })), [
      { id: 'a1', group: 'books/{id}', data: { subscriber: 'alice', payload: { n: 1 } } },
      { id: 'b1', group: 'books/{id}', data: 'bob' },
    ]);
    assert.deepEqual(await b.presence.list({ id: 'a2' }), [{ id: 'a2', group: '*', data: null }]);
    assert.deepEqual(await b.presence.list({ id: 'a2', group: 'books/{id}' }), []);
    assert.deepEqual(await b.presence.list({ id: 'nobody' }), []);
    a.presence.remove('a1');
    a.presence.add({ id: 'a2', group: 'replaced', data: 2 });
    await waitFor(async () => JSON.stringify(await b.presence.list({ group: 'replaced' })) === JSON.stringify([{ id: 'a2', group: 'replaced', data: 2 }]), 3000, 'the replaced entry on B');
    assert.deepEqual(ids(await b.presence.list()), ['a2', 'b1']);
    assert.deepEqual(a.expired, []);
    assert.deepEqual(b.expired, []);
    assert.deepEqual([...a.restored, ...b.restored], []);
  });

  test('the layout: a hash per instance, a sorted set scored by Redis\'s clock, safety expiries', async () => {
    const key = newKey();
    const a = instance({ key, heartbeatMs: 1000 });
    a.presence.add({ id: 'x', group: 'g', data: { n: 1 } });
    const b = instance({ key, heartbeatMs: 1000 });
    await until(b.presence, ['x'], 3000, 'B to see A');
    await withRedis(REDIS_URL, async (redis) => {
      const [seconds, micros] = (await redis.time()) as [number | string, number | string];
      const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      const score = Number(await redis.zscore(`${key}:instances`, a.presence.instance));
      assert.ok(score > now + 1500 && score <= now + 3000 + 50, `score ${score - now} ms ahead of Redis's clock`);
      assert.deepEqual(await redis.hgetall(`${key}:presence:${a.presence.instance}`), { x: '{"id":"x","group":"g","data":{"n":1}}' });
      const hashTtl = await redis.pttl(`${key}:presence:${a.presence.instance}`);
      assert.ok(hashTtl > 8000 && hashTtl <= 10_000, `hash expires in ${hashTtl} ms`);
      const setTtl = await redis.pttl(`${key}:instances`);
      assert.ok(setTtl > 8000 && setTtl <= 10_000, `sorted set expires in ${setTtl} ms`);
      // B has no entries: no hash, but it is registered.
      assert.equal(await redis.exists(`${key}:presence:${b.presence.instance}`), 0);
      assert.notEqual(await redis.zscore(`${key}:instances`, b.presence.instance), null);
    });
  });

  test('what another program wrote in an instance\'s hash is skipped', async () => {
    const key = newKey();
    const a = instance({ key, heartbeatMs: 200 });
    await withRedis(REDIS_URL, async (redis) => {
      await redis.zadd(`${key}:instances`, Date.now() + 60_000, 'foreign');
      await redis.hset(`${key}:presence:foreign`, 'ok', '{"id":"ok","group":"g","data":1}', 'bad', 'not json', 'array', '[1]', 'noid', '{"group":"g"}');
    });
    assert.deepEqual(await a.presence.list(), [{ id: 'ok', group: 'g', data: 1 }]);
  });

  test('10,000 adds on one instance are visible from another within a bound, in a few commands', async () => {
    const key = newKey();
    const { client, commands } = countingClient();
    // The default heartbeat (5 s): the count is the writes' alone.
    const a = instance({ key, client });
    const b = instance({ key });
    a.presence.add({ id: 'probe', group: 'probe', data: null });
    await until(b.presence, ['probe'], 3000, 'A registered');
    const before = commands();
    const start = Date.now();
    for (let n = 0; n < 10_000; n++) a.presence.add({ id: `s-${n}`, group: n % 2 === 0 ? 'even' : 'odd', data: { subscriber: `urn:uuid:${n}`, payload: { n } } });
    const added = Date.now() - start;
    let listed = 0;
    await waitFor(async () => (listed = (await b.presence.list()).length) === 10_001, 5000, `B to list 10,001 (last ${listed})`);
    const visible = Date.now() - start;
    const sent = commands() - before;
    console.log(`# 10,000 adds: ${added} ms to call add(), visible on B after ${visible} ms, ${sent} commands from A`);
    assert.ok(visible < 2000, `visible after ${visible} ms`);
    assert.ok(sent <= 4, `A sent ${sent} commands for 10,000 adds`);
    assert.equal((await b.presence.list({ group: 'even' })).length, 5000);
    // And as many removals, as cheaply.
    const beforeRemoves = commands();
    for (let n = 0; n < 10_000; n++) a.presence.remove(`s-${n}`);
    await until(b.presence, ['probe'], 5000, 'B to see the removals');
    assert.ok(commands() - beforeRemoves <= 4, `A sent ${commands() - beforeRemoves} commands for 10,000 removals`);
  });

  test('an instance killed with SIGKILL leaves the list within 3 heartbeats, and one survivor hears of its entries, once', async () => {
    const heartbeatMs = 200;
    const key = newKey();
    const a = instance({ key, heartbeatMs });
    const b = instance({ key, heartbeatMs });
    a.presence.add({ id: 'a', group: 'survivor', data: null });
    b.presence.add({ id: 'b', group: 'survivor', data: null });
    const { child: victim, instance: victimInstance } = await child({ REDIS_URL, KEY: key, HEARTBEAT_MS: String(heartbeatMs), COUNT: '50', PREFIX: 'c', GROUP: 'victim' });
    const all = ['a', 'b', ...range('c', 50)];
    await until(a.presence, all, 5000, 'A to see the child');
    await until(b.presence, all, 5000, 'B to see the child');
    const exited = once(victim, 'exit');
    victim.kill('SIGKILL');
    const killed = Date.now();
    await exited;
    const [gone, goneOnB] = await Promise.all([until(a.presence, ['a', 'b'], 3000, 'the child to leave A\'s list'), until(b.presence, ['a', 'b'], 3000, 'the child to leave B\'s list')]);
    await waitFor(() => a.expired.length + b.expired.length > 0, 3000, 'onExpired');
    const expiredAfter = Date.now() - killed;
    console.log(`# SIGKILL: out of the lists after ${Math.max(gone, goneOnB)} ms, onExpired after ${expiredAfter} ms (heartbeat ${heartbeatMs} ms)`);
    // 3 heartbeats after its last (so at most 3 after the kill) for both: out of the list by the
    // score, reaped by a timer set for that moment. The test allows one heartbeat more, for timers
    // that fire late on a loaded machine and for round trips.
    assert.ok(Math.max(gone, goneOnB) <= 4 * heartbeatMs, `left the list after ${Math.max(gone, goneOnB)} ms`);
    assert.ok(expiredAfter <= 4 * heartbeatMs, `onExpired after ${expiredAfter} ms`);
    // Nobody else hears of them later.
    await sleep(3 * heartbeatMs);
    const calls = [...a.expired, ...b.expired];
    assert.equal(calls.length, 1, `onExpired called ${calls.length} times`);
    assert.deepEqual(ids(calls[0]!), range('c', 50).sort());
    assert.ok(calls[0]!.every((entry) => entry.group === 'victim' && (entry.data as { pid: number }).pid === victim.pid));
    await withRedis(REDIS_URL, async (redis) => {
      assert.equal(await redis.exists(`${key}:presence:${victimInstance}`), 0);
      assert.deepEqual((await redis.zrange(`${key}:instances`, '0', '-1')).sort(), [a.presence.instance, b.presence.instance].sort());
    });
  });

  test('a graceful close removes the entries at once, without onExpired', async () => {
    const heartbeatMs = 200;
    const key = newKey();
    const a = instance({ key, heartbeatMs });
    const b = instance({ key, heartbeatMs });
    for (const id of range('b', 20)) b.presence.add({ id, group: 'g', data: null });
    await until(a.presence, range('b', 20), 3000, 'A to see B');
    await b.presence.close();
    assert.deepEqual(await a.presence.list(), []);
    await sleep(5 * heartbeatMs);
    assert.deepEqual(a.expired, []);
    await withRedis(REDIS_URL, async (redis) => {
      assert.equal(await redis.exists(`${key}:presence:${b.presence.instance}`), 0);
      assert.equal(await redis.zscore(`${key}:instances`, b.presence.instance), null);
    });
    await assert.rejects(b.presence.list(), /closed/);
  });

  test('a graceful stop of another process is no death either', async () => {
    const heartbeatMs = 200;
    const key = newKey();
    const a = instance({ key, heartbeatMs });
    const { child: other } = await child({ REDIS_URL, KEY: key, HEARTBEAT_MS: String(heartbeatMs), COUNT: '5', PREFIX: 'c' });
    await until(a.presence, range('c', 5), 5000, 'A to see the child');
    const exited = once(other, 'exit');
    other.disconnect();
    const [code] = (await exited) as [number];
    assert.equal(code, 0);
    assert.deepEqual(await a.presence.list(), []);
    await sleep(5 * heartbeatMs);
    assert.deepEqual(a.expired, []);
  });

  test('cut off from Redis for longer than 3 heartbeats: reported ended, and back when Redis is', async () => {
    const heartbeatMs = 200;
    const key = newKey();
    const proxy = await new RedisProxy(new URL(REDIS_URL)).start();
    cleanups.push(() => proxy.close());
    const a = instance({ key, heartbeatMs, url: proxy.url });
    const b = instance({ key, heartbeatMs });
    for (const id of range('a', 20)) a.presence.add({ id, group: 'g', data: { id } });
    await until(b.presence, range('a', 20), 3000, 'B to see A');
    proxy.cut();
    const cut = Date.now();
    // Changes while cut off: kept in memory, listed by A itself, which cannot list others'.
    for (const id of range('a', 5)) a.presence.remove(id);
    for (const id of range('new', 5)) a.presence.add({ id, group: 'g', data: { id } });
    const now = [...range('a', 20).slice(5), ...range('new', 5)];
    await assert.rejects(a.presence.list(), /Redis at .* (is unreachable|failed)/);
    await until(b.presence, [], 3 * heartbeatMs + 1000, 'A to leave B\'s list');
    await waitFor(() => b.expired.length > 0, 4 * heartbeatMs + 1000, 'B\'s onExpired');
    console.log(`# cut off: A reaped by B after ${Date.now() - cut} ms`);
    assert.deepEqual(ids(b.expired.flat()), range('a', 20).sort());
    proxy.restore();
    const back = await until(b.presence, now, 5000, 'A back in B\'s list');
    console.log(`# restored: A back in B's list after ${back} ms`);
    assert.deepEqual(ids(await a.presence.list()), now.sort());
    assert.ok(a.lines.some((line) => line.level === 'warn' && /taken for dead/.test(line.msg ?? '')), 'A says it was taken for dead');
    // A's protocol hears which subscriptions to announce again: all it has (B reported the old ones ended).
    assert.equal(a.restored.length, 1);
    assert.deepEqual(ids(a.restored[0]!), now);
    assert.ok(a.lines.some((line) => line.level === 'warn' && /lost the connection/.test(line.msg ?? '')));
    // Once only.
    await sleep(4 * heartbeatMs);
    assert.equal(b.expired.length, 1);
    assert.deepEqual(a.expired, []);
  });

  test('cut off briefly: the changes made meanwhile are written when Redis is back, and nobody is reported ended', async () => {
    const heartbeatMs = 2000;
    const key = newKey();
    const proxy = await new RedisProxy(new URL(REDIS_URL)).start();
    cleanups.push(() => proxy.close());
    const a = instance({ key, heartbeatMs, url: proxy.url });
    const b = instance({ key, heartbeatMs });
    for (const id of range('a', 10)) a.presence.add({ id, group: 'g', data: null });
    await until(b.presence, range('a', 10), 3000, 'B to see A');
    proxy.cut();
    await waitFor(async () => (await a.presence.list().then(() => false, () => true)), 2000, 'A to notice the cut');
    a.presence.remove('a-0');
    a.presence.add({ id: 'during', group: 'g', data: null });
    await sleep(100);
    proxy.restore();
    const expected = [...range('a', 10).slice(1), 'during'];
    await until(b.presence, expected, 4000, 'B to see the changes made during the cut');
    assert.deepEqual(b.expired, []);
    assert.deepEqual(a.restored, []);
    assert.ok(!a.lines.some((line) => /taken for dead/.test(line.msg ?? '')));
  });

  test('an instance without an onExpired listener leaves dead instances to those that report them', async () => {
    const heartbeatMs = 100;
    const key = newKey();
    const silent = instance({ key, heartbeatMs, listen: false });
    // A dead instance: registered in the past, its hash still there.
    await withRedis(REDIS_URL, async (redis) => {
      const [seconds, micros] = (await redis.time()) as [number | string, number | string];
      await redis.zadd(`${key}:instances`, Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - 100, 'dead');
      await redis.hset(`${key}:presence:dead`, 'd', '{"id":"d","group":"g","data":null}');
    });
    assert.deepEqual(await silent.presence.list(), []);
    await sleep(3 * heartbeatMs);
    await withRedis(REDIS_URL, async (redis) => assert.equal(await redis.zscore(`${key}:instances`, 'dead') !== null, true));
    const reporter = instance({ key, heartbeatMs });
    await waitFor(() => reporter.expired.length > 0, 2000, 'the reporter to reap');
    assert.deepEqual(reporter.expired, [[{ id: 'd', group: 'g', data: null }]]);
  });
});
