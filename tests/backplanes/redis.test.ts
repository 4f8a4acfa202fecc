/**
 * The Redis backplane against a real Redis (REDIS_URL), with hubs serving real clients on real
 * sockets: several instances in this process and in others, instances cut off from Redis by a
 * proxy, and a redis-server of the test's own that is killed and restarted.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { Redis } from 'ioredis';
import { createHub, type Hub, type ResetData } from '../../src/index.js';
import { redisBackplane } from '../../src/backplanes/redis.js';
import { compareLogIds } from '../../src/backplanes/log-id.js';
import { failOnEscapedErrors, listen, openEvents, recordingLogger, waitFor, type EventReader } from '../helpers.js';
import { freePort, OwnRedis, REDIS_URL, RedisProxy, redisMissing, redisServerMissing, TestKeys, withRedis } from '../redis.js';

const noRedis = await redisMissing();
const noRedisServer = noRedis || redisServerMissing();

const keys = new TestKeys();
/** Undone last first, after every test of the file: servers, hubs, clients, processes, proxies. */
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await keys.cleanUp();
});

// Nothing the backplane does may escape as an unhandled error, whatever happens to Redis.
failOnEscapedErrors();

interface Instance {
  hub: Hub;
  url: string;
  lines: ReturnType<typeof recordingLogger>['lines'];
}

/** A hub on the Redis backplane, serving on 127.0.0.1:0. */
async function instance(options: { key: string; url?: string; history?: number; connectTimeout?: number; keepAlive?: number }): Promise<Instance> {
  const { key, url = REDIS_URL, history, connectTimeout, keepAlive } = options;
  const { logger, lines } = recordingLogger();
  const hub = createHub({ backplane: redisBackplane({ url, key, connectTimeout, logger }), history, logger });
  const running = await listen(hub.handler(keepAlive === undefined ? {} : { keepAlive }));
  cleanups.push(async () => {
    await hub.close({ timeout: 500 });
    await running.close();
  });
  return { hub, url: running.url, lines };
}

/** Subscriptions that have joined: not waiting any more for the backplane, or to catch up. */
const joined = (hub: Hub): number => hub.stats().connections - hub.stats().waiting;

/** A client of `topic` on `at`, once it has joined (subscriptions wait for the backplane). */
async function subscribe(at: Instance, topic = 'news', headers: Record<string, string> = {}): Promise<EventReader> {
  const before = joined(at.hub);
  const reader = await openEvents(`${at.url}/events?topic=${topic}`, headers);
  cleanups.push(() => reader.res.destroy());
  await waitFor(() => joined(at.hub) > before, 5000, 'the subscription');
  return reader;
}

const ids = (reader: EventReader): string[] => reader.events.map((event) => event.id ?? '');
const datas = (reader: EventReader): string[] => reader.events.map((event) => event.data);
const lostWarnings = (at: Instance): number => at.lines.filter((line) => line.level === 'warn' && /lost events/.test(line.msg ?? '')).length;

describe('redisBackplane options', () => {
  test('a missing or malformed option throws a TypeError naming it, and never echoes a url', () => {
    assert.throws(() => redisBackplane({}), /option url must be a redis:\/\/ or rediss:\/\/ URL; got undefined/);
    assert.throws(() => redisBackplane({ url: 'http://user:secret@host' }), (error: Error) => error instanceof TypeError && !error.message.includes('secret'));
    assert.throws(() => redisBackplane({ url: REDIS_URL, key: '' }), /option key must be a non-empty string/);
    assert.throws(() => redisBackplane({ url: REDIS_URL, connectTimeout: 0 }), /option connectTimeout/);
    assert.throws(() => redisBackplane({ url: REDIS_URL, maxLength: -1 }), /option maxLength/);
  });

  test('mayBeAhead: any stream id up to a minute past this clock may be one not heard yet; others cannot', () => {
    const backplane = redisBackplane({ url: REDIS_URL });
    const mayBeAhead = (id: string): boolean | undefined => backplane.mayBeAhead?.(id);
    assert.equal(mayBeAhead('1-0'), true);
    assert.equal(mayBeAhead(`${Date.now()}-3`), true);
    assert.equal(mayBeAhead(`${Date.now() + 30_000}-0`), true, 'the Redis clock may be a little ahead');
    assert.equal(mayBeAhead(`${Date.now() + 120_000}-0`), false, 'no Redis clock is minutes ahead');
    assert.equal(mayBeAhead('99999999999999999999-0'), false);
    for (const id of ['', 'abc', '12', '1-', '-1', '1-2-3']) assert.equal(mayBeAhead(id), false, JSON.stringify(id));
  });
});

describe('redisBackplane without a Redis to reach', () => {
  test('the hub opens after connectTimeout, publish rejects at once naming the url without its password, close() is prompt', async () => {
    const url = `redis://:hunter2@127.0.0.1:${await freePort()}`;
    const { logger, lines } = recordingLogger();
    const backplane = redisBackplane({ url, connectTimeout: 200, logger });
    const hub = createHub({ backplane, logger });
    const running = await listen(hub.handler());
    cleanups.push(() => running.close(), () => hub.close({ timeout: 100 }));
    const started = Date.now();
    await assert.rejects(hub.publish('news', { data: 'x' }), (error: Error) => {
      assert.match(error.message, /^serve-sse: Redis at redis:\/\/127\.0\.0\.1:\d+ is unreachable; the event was not published$/);
      return true;
    });
    assert.ok(Date.now() - started < 1000, 'the first publish waits for connectTimeout at most');
    const reader = await openEvents(`${running.url}/events?topic=news`);
    cleanups.push(() => reader.res.destroy());
    await waitFor(() => joined(hub) === 1, 2000, 'the hub to serve without Redis');
    assert.equal(hub.stats().backplaneConnected, false);
    const closing = Date.now();
    await hub.close({ timeout: 500 });
    assert.ok(Date.now() - closing < 1000, `close() took ${Date.now() - closing} ms`);
    assert.ok(lines.length > 0 && !JSON.stringify(lines.map((line) => [line.obj instanceof Error ? line.obj.message : line.obj, line.msg])).includes('hunter2'));
  });

  test('connection refused: the first publish rejects as soon as the first attempt fails, not after connectTimeout', async () => {
    const port = await freePort();
    const backplane = redisBackplane({ url: `redis://:hunter2@127.0.0.1:${port}`, logger: recordingLogger().logger });
    const hub = createHub({ backplane, logger: recordingLogger().logger });
    cleanups.push(() => hub.close({ timeout: 100 }));
    const started = Date.now();
    await assert.rejects(hub.publish('news', { data: 'x' }), (error: Error) => {
      assert.equal(error.message, `serve-sse: Redis at redis://127.0.0.1:${port} is unreachable; the event was not published`);
      return true;
    });
    const waited = Date.now() - started;
    assert.ok(waited < 1000, `the first publish waited ${waited} ms (connectTimeout is 5000)`);
  });

  test('a host that accepts and never answers: the first publish waits connectTimeout at most', async () => {
    const silent = createServer(() => {});
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    cleanups.push(() => new Promise((resolve) => silent.close(resolve)));
    const sockets: Socket[] = [];
    silent.on('connection', (socket) => sockets.push(socket));
    cleanups.push(() => sockets.forEach((socket) => socket.destroy()));
    const { port } = silent.address() as AddressInfo;
    const backplane = redisBackplane({ url: `redis://127.0.0.1:${port}`, connectTimeout: 300, logger: recordingLogger().logger });
    const hub = createHub({ backplane, logger: recordingLogger().logger });
    cleanups.push(() => hub.close({ timeout: 100 }));
    const started = Date.now();
    await assert.rejects(hub.publish('news', { data: 'x' }), /is unreachable; the event was not published/);
    const waited = Date.now() - started;
    assert.ok(waited >= 250 && waited < 1500, `the first publish waited ${waited} ms (connectTimeout is 300)`);
  });
});

describe('the Redis backplane', { skip: noRedis }, () => {
  test('given an ioredis client, it copies its settings and leaves it open', async () => {
    const client = new Redis(REDIS_URL);
    cleanups.push(() => client.disconnect());
    const key = keys.key();
    const hub = createHub({ backplane: redisBackplane({ client, key }) });
    cleanups.push(() => hub.close());
    const id = await hub.publish('news', { data: 'x' });
    await hub.close();
    assert.equal(client.status, 'ready');
    // The topics, the event, and the count of appends, also kept beside the stream.
    assert.deepEqual(await client.xrange(key, '-', '+'), [[id, ['t', '["news"]', 'b', 'data: x\n\n', 'n', '1']]]);
    assert.equal(await client.get(`${key}:seq`), '1');
  });

  test('what any instance publishes reaches the clients of every instance in one order, with the ids publish returned', async () => {
    const key = keys.key();
    const instances = [await instance({ key }), await instance({ key }), await instance({ key })];
    const readers = await Promise.all(instances.map((at) => subscribe(at)));
    const [a, b] = instances as [Instance, Instance, Instance];
    // Two publishers at once: the stream decides one order, and every instance hears that one.
    const published = await Promise.all(
      Array.from({ length: 10 }, (_, n) => (n % 2 === 0 ? a : b).hub.publish('news', { data: `event ${n}` }).then((id) => ({ id, data: `event ${n}` }))),
    );
    published.sort((x, y) => compareLogIds(x.id, y.id));
    for (const reader of readers) {
      await reader.until(() => reader.events.length >= 10, 5000, 'ten events');
      assert.deepEqual(ids(reader), published.map((event) => event.id));
      assert.deepEqual(datas(reader), published.map((event) => event.data));
    }
    assert.ok(published.every(({ id }) => /^\d+-\d+$/.test(id)), 'ids are stream ids');
  });

  test('a client that reconnects to another instance resumes from its last id: what it missed, no duplicate, then live events', async () => {
    const key = keys.key();
    const [a, b, c] = [await instance({ key }), await instance({ key }), await instance({ key })];
    // A load balancer in miniature: the client's requests go wherever `target` says, and the
    // reconnection waits for the gate, so that it misses events for sure.
    let target = a.url;
    let gate: Promise<void> = Promise.resolve();
    const requests: Array<{ to: string; lastEventId: string | null }> = [];
    const source = new EventSource('http://balancer.invalid/events?topic=news', {
      fetch: async (input, init) => {
        await gate;
        const { pathname, search } = new URL(String(input));
        requests.push({ to: target, lastEventId: new Headers(init?.headers).get('last-event-id') });
        return fetch(`${target}${pathname}${search}`, init);
      },
    });
    cleanups.push(() => source.close());
    const got: Array<{ id: string; data: string }> = [];
    source.addEventListener('message', (event) => got.push({ id: event.lastEventId, data: String(event.data) }));
    await waitFor(() => joined(a.hub) === 1, 5000, 'the client on A');

    const published: string[] = [];
    for (const n of [1, 2, 3]) published.push(await c.hub.publish('news', { data: `n${n}` }));
    await waitFor(() => got.length === 3, 5000, 'three events on A');

    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    target = b.url;
    await a.hub.close({ retry: 50 }); // A goes away (a deploy, say); its client comes back to B
    for (const n of [4, 5]) published.push(await c.hub.publish('news', { data: `n${n}` }));
    await waitFor(() => b.hub.stats().history >= 5, 5000, 'B to hear the missed events');
    open();
    await waitFor(() => got.length === 5, 5000, 'the missed events, from B');
    assert.equal(b.hub.stats().replayed, 2);
    published.push(await c.hub.publish('news', { data: 'n6' }));
    await waitFor(() => got.length === 6, 5000, 'a live event on B');
    await sleep(50);

    assert.deepEqual(got, published.map((id, n) => ({ id, data: `n${n + 1}` })));
    assert.deepEqual(requests, [
      { to: a.url, lastEventId: null },
      { to: b.url, lastEventId: published[2] },
    ]);
  });

  test('an instance loads the shared history when it opens: replay from an id it never saw, and a reset before its history', async () => {
    const key = keys.key();
    const a = await instance({ key });
    const published: string[] = [];
    for (const n of [1, 2, 3, 4, 5]) published.push(await a.hub.publish('news', { data: `n${n}` }));
    const b = await instance({ key, history: 3 });

    const resumed = await subscribe(b, 'news', { 'last-event-id': published[1]! });
    await resumed.until(() => resumed.events.length >= 3, 5000, 'the replay');
    assert.deepEqual(ids(resumed), published.slice(2));

    const tooOld = await subscribe(b, 'news', { 'last-event-id': published[0]! });
    await tooOld.until(() => tooOld.events.length >= 1, 5000, 'the reset');
    const [reset] = tooOld.events;
    assert.equal(reset?.event, 'reset');
    assert.equal(reset?.id, published[4]);
    assert.deepEqual(JSON.parse(reset!.data) as ResetData, { lastEventId: published[0], reason: 'expired' });
  });

  test('instances in separate processes share one log', async () => {
    const key = keys.key();
    const children = await Promise.all([startChild(key), startChild(key)]);
    const a = await instance({ key });
    const readers = [await subscribe(a)];
    for (const url of children) {
      const reader = await openEvents(`${url}/events?topic=news`);
      cleanups.push(() => reader.res.destroy());
      readers.push(reader);
      await waitFor(() => childConnections.get(url) === 1, 5000, 'the subscription in the child');
    }
    // Alternately from a child (over HTTP) and from this process.
    const published: string[] = [];
    for (const n of [1, 2, 3, 4, 5, 6]) {
      if (n % 2 === 1) {
        const response = await fetch(`${children[0]}/publish?topic=news`, { method: 'POST', body: `n${n}` });
        assert.equal(response.status, 200);
        published.push(await response.text());
      } else {
        published.push(await a.hub.publish('news', { data: `n${n}` }));
      }
    }
    for (const reader of readers) {
      await reader.until(() => reader.events.length >= 6, 5000, 'six events');
      assert.deepEqual(ids(reader), published);
      assert.deepEqual(datas(reader), ['n1', 'n2', 'n3', 'n4', 'n5', 'n6']);
    }
  });

  test('entries that serve-sse did not write are skipped with a warning each', async () => {
    const key = keys.key();
    const a = await instance({ key });
    const reader = await subscribe(a);
    await withRedis(REDIS_URL, async (redis) => {
      await redis.xadd(key, '*', 'foo', 'bar');
      await redis.xadd(key, '*', 't', 'not json', 'b', 'data: x\n\n');
      await redis.xadd(key, '*', 't', '["news"]', 'b', 'id: 1\ndata: a forged id\n\n');
      await redis.xadd(key, '*', 't', '["news"]', 'b', 'data: one\n\ndata: two\n\n');
    });
    const good = await a.hub.publish('news', { data: 'good' });
    await reader.until(() => reader.events.length >= 1, 5000, 'the good event');
    await sleep(50);
    assert.deepEqual(reader.events.map(({ id, data }) => ({ id, data })), [{ id: good, data: 'good' }]);
    const skipped = a.lines.filter((line) => line.level === 'warn' && /skipped a stream entry/.test(line.msg ?? ''));
    assert.equal(skipped.length, 4);
  });

  test('close() is prompt while the reader waits on Redis', async () => {
    const backplane = redisBackplane({ url: REDIS_URL, key: keys.key() });
    const hub = createHub({ backplane });
    cleanups.push(() => hub.close());
    await hub.publish('news', { data: 'x' });
    assert.equal(backplane.connected, true);
    await sleep(100); // the reader is now blocked in XREAD, for seconds
    const started = Date.now();
    await hub.close();
    assert.ok(Date.now() - started < 500, `close() took ${Date.now() - started} ms`);
    assert.equal(backplane.connected, false);
    await assert.rejects(backplane.append(['news'], 'data: x\n\n'), /not open/);
  });

  test('an instance cut off from Redis catches up on what the others published meanwhile, in order, without duplicates', async () => {
    const { a, b, proxy, live, first } = await cutOffPair();
    const published = [first];
    await cutOff(proxy, b);
    await assert.rejects(b.hub.publish('news', { data: 'refused' }), /Redis at redis:\/\/127\.0\.0\.1:\d+ is unreachable; the event was not published/);
    for (const n of [1, 2, 3]) published.push(await a.hub.publish('news', { data: `missed ${n}` }));
    await sleep(100);
    assert.equal(live.events.length, 1, 'nothing reaches B while it is cut off');

    proxy.restore();
    await live.until(() => live.events.length >= 4, 5000, 'the missed events, late');
    await waitFor(() => b.hub.stats().backplaneConnected, 5000, 'B to reconnect');
    published.push(await b.hub.publish('news', { data: 'after' }));
    await live.until(() => live.events.length >= 5, 5000, 'a live event');
    await sleep(50);
    assert.deepEqual(ids(live), published);
    assert.deepEqual(datas(live), ['first', 'missed 1', 'missed 2', 'missed 3', 'after']);

    // What B caught up on is in its history too.
    const resumed = await subscribe(b, 'news', { 'last-event-id': published[0]! });
    await resumed.until(() => resumed.events.length >= 4, 5000, 'the replay');
    assert.deepEqual(ids(resumed), published.slice(1));
    assert.equal(lostWarnings(b), 0);
  });

  test('an instance cut off while the stream was trimmed past it tells its hub: older ids get a reset', async () => {
    const { key, a, b, proxy, live, first } = await cutOffPair();
    await cutOff(proxy, b);
    for (const n of [1, 2]) await a.hub.publish('news', { data: `trimmed ${n}` });
    const kept = await a.hub.publish('news', { data: 'kept' });
    await withRedis(REDIS_URL, (redis) => redis.xtrim(key, 'MAXLEN', 1));
    proxy.restore();

    // The live client missed the trimmed events: it is told, ahead of the first event after the gap.
    await live.until(() => live.events.length >= 3, 5000, 'the reset and the entry that was kept');
    assert.deepEqual(live.events.map(({ id, event }) => ({ id, event })), [
      { id: first, event: undefined },
      { id: kept, event: 'reset' },
      { id: kept, event: undefined },
    ]);
    assert.deepEqual(JSON.parse(live.events[1]!.data) as ResetData, { lastEventId: first, reason: 'expired' });
    assert.equal(lostWarnings(b), 1);
    assert.equal(b.hub.stats().gaps, 1);
    const resumed = await subscribe(b, 'news', { 'last-event-id': first });
    await resumed.until(() => resumed.events.length >= 1, 5000, 'the reset');
    assert.equal(resumed.events[0]?.event, 'reset');
    assert.equal(resumed.events[0]?.id, kept);
    assert.deepEqual(JSON.parse(resumed.events[0]!.data) as ResetData, { lastEventId: first, reason: 'expired' });
    // A, never cut off, still replays the whole run from its own history.
    const onA = await subscribe(a, 'news', { 'last-event-id': first });
    await onA.until(() => onA.events.length >= 3, 5000, 'the replay on A');
    assert.deepEqual(datas(onA), ['trimmed 1', 'trimmed 2', 'kept']);
  });

  test('Redis unreachable at start: the hub serves after connectTimeout, then hears only what comes after Redis is there', async () => {
    const key = keys.key();
    const proxy = await cutOffable();
    const a = await instance({ key });
    await a.hub.publish('news', { data: 'old' });
    proxy.cut();
    const started = Date.now();
    const b = await instance({ key, url: proxy.url, connectTimeout: 300 });
    const live = await subscribe(b);
    const waited = Date.now() - started;
    assert.ok(waited >= 250 && waited < 2000, `the subscription waited ${waited} ms`);
    assert.ok(b.lines.some((line) => line.level === 'error' && /did not answer within 300 ms/.test(String((line.obj as Error).message))));
    await a.hub.publish('news', { data: 'published while B was away' });

    proxy.restore();
    await waitFor(() => lostWarnings(b) === 1, 5000, 'B to reach Redis');
    const fresh = await a.hub.publish('news', { data: 'fresh' });
    await live.until(() => live.events.length >= 2, 5000, 'the fresh event');
    await sleep(50);
    // What was published while B was away never reaches it; its client is told so, then goes on.
    assert.deepEqual(live.events.map(({ id, event, data }) => ({ id, event, data })), [
      { id: fresh, event: 'reset', data: JSON.stringify({ lastEventId: '', reason: 'expired' }) },
      { id: fresh, event: undefined, data: 'fresh' },
    ]);
  });
});

describe('the count of appends (<key>:seq, field n)', { skip: noRedis }, () => {
  /** A Redis connection for the test's own commands, closed after the file. */
  async function direct(): Promise<Redis> {
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 0 });
    cleanups.push(() => redis.disconnect());
    return redis;
  }

  test('an entry whose count does not follow the last one heard tells the hub of a gap, before it, with no connection failure', async () => {
    const key = keys.key();
    const redis = await direct();
    const a = await instance({ key });
    const b = await instance({ key });
    const live = await subscribe(b);
    const first = await a.hub.publish('news', { data: 'first' });
    await live.until(() => live.events.length === 1, 5000, 'the first event');

    // Five appends that B never read (trimmed before it could, say): the count jumps.
    await redis.incrby(`${key}:seq`, 5);
    const afterJump = await a.hub.publish('news', { data: 'after a jump' });
    await live.until(() => live.events.length === 3, 5000, 'the reset and the event after the jump');
    // The counter starts again (Redis restarted empty, or the keys were deleted): the count falls back.
    await redis.del(`${key}:seq`);
    const afterRestart = await a.hub.publish('news', { data: 'after a restart' });
    const next = await a.hub.publish('news', { data: 'next' });
    await live.until(() => live.events.length === 6, 5000, 'the reset and the events after the restart');
    await sleep(50);

    assert.deepEqual(live.events.map(({ id, event }) => ({ id, event })), [
      { id: first, event: undefined },
      { id: afterJump, event: 'reset' },
      { id: afterJump, event: undefined },
      { id: afterRestart, event: 'reset' },
      { id: afterRestart, event: undefined },
      { id: next, event: undefined },
    ]);
    assert.deepEqual(JSON.parse(live.events[1]!.data) as ResetData, { lastEventId: first, reason: 'expired' });
    assert.deepEqual(JSON.parse(live.events[3]!.data) as ResetData, { lastEventId: afterJump, reason: 'expired' });
    assert.equal(b.hub.stats().gaps, 2);
    assert.equal(lostWarnings(b), 2);
    // A heard the same log: the same gaps.
    assert.equal(a.hub.stats().gaps, 2);
  });

  test('an instance that opens on a stream with a gap in its history replays only what follows the gap', async () => {
    const key = keys.key();
    const redis = await direct();
    const a = await instance({ key });
    const published: string[] = [];
    for (const n of [1, 2, 3]) published.push(await a.hub.publish('news', { data: `n${n}` }));
    await redis.incrby(`${key}:seq`, 2);
    for (const n of [4, 5]) published.push(await a.hub.publish('news', { data: `n${n}` }));
    const b = await instance({ key, history: 10 });
    // Subscriptions wait for the history: this one sees it loaded.
    const acrossTheGap = await subscribe(b, 'news', { 'last-event-id': published[1]! });
    await acrossTheGap.until(() => acrossTheGap.events.length >= 1, 5000, 'the reset');
    assert.equal(acrossTheGap.events[0]?.event, 'reset');
    assert.deepEqual(JSON.parse(acrossTheGap.events[0]!.data) as ResetData, { lastEventId: published[1], reason: 'expired' });
    assert.equal(b.hub.stats().history, 2);
    assert.equal(b.hub.stats().gaps, 1);
    const afterTheGap = await subscribe(b, 'news', { 'last-event-id': published[3]! });
    await afterTheGap.until(() => afterTheGap.events.length >= 1, 5000, 'the replay');
    assert.deepEqual(ids(afterTheGap), [published[4]]);
  });

  test('entries of an older serve-sse (no count) are delivered, and the next count heard is taken as the start', async () => {
    const key = keys.key();
    const redis = await direct();
    const a = await instance({ key });
    const live = await subscribe(a);
    const published = [await a.hub.publish('news', { data: 'counted' })];
    await redis.incrby(`${key}:seq`, 10);
    published.push(await redis.xadd(key, '*', 't', '["news"]', 'b', 'data: uncounted\n\n') ?? '');
    published.push(await a.hub.publish('news', { data: 'counted again' }), await a.hub.publish('news', { data: 'and on' }));
    await live.until(() => live.events.length >= 4, 5000, 'four events');
    await sleep(50);
    assert.deepEqual(ids(live), published);
    assert.deepEqual(datas(live), ['counted', 'uncounted', 'counted again', 'and on']);
    assert.equal(a.hub.stats().gaps, 0);
  });

  test('an append Redis refuses leaves the count as it was: no entry, and no false gap after', async () => {
    const key = keys.key();
    const redis = await direct();
    const a = await instance({ key });
    await a.hub.publish('news', { data: 'one' });
    // The counter is there but the stream key holds a string: the append fails after the count.
    await redis.set(`${key}:other`, 'x');
    const wrongStream = redisBackplane({ url: REDIS_URL, key: `${key}:other`, logger: recordingLogger().logger });
    const other = createHub({ backplane: wrongStream, logger: recordingLogger().logger });
    cleanups.push(() => other.close({ timeout: 100 }), () => redis.del(`${key}:other`, `${key}:other:seq`));
    await assert.rejects(other.publish('news', { data: 'x' }), /^Error: serve-sse: Redis at redis:\/\/127\.0\.0\.1:\d+ refused the event: WRONGTYPE/);
    assert.equal(await redis.get(`${key}:other:seq`), '0', 'the count was given back');
    // The counter holds something that is no count: refused before anything is written.
    await redis.set(`${key}:seq`, 'not a number');
    await assert.rejects(a.hub.publish('news', { data: 'x' }), /refused the event: ERR value is not an integer/);
    assert.equal(await redis.xlen(key), 1);
    await redis.set(`${key}:seq`, '1');
    const live = await subscribe(a);
    await a.hub.publish('news', { data: 'two' });
    await live.until(() => live.events.length >= 1, 5000, 'the next event');
    await sleep(50);
    assert.deepEqual(datas(live), ['two']);
    assert.equal(a.hub.stats().gaps, 0);
  });

  test('a Redis that forgot the script (SCRIPT FLUSH, a restart) is sent it whole', async () => {
    const key = keys.key();
    const redis = await direct();
    const a = await instance({ key });
    await a.hub.publish('news', { data: 'one' });
    await redis.script('FLUSH');
    await a.hub.publish('news', { data: 'two' });
    assert.equal(await redis.xlen(key), 2);
    assert.equal(await redis.get(`${key}:seq`), '2');
    assert.equal(a.hub.stats().gaps, 0);
  });
});

describe('appends in batches (one script call for the appends made together)', { skip: noRedis }, () => {
  /** The count field of each entry of the stream, in stream order. */
  async function counts(url: string, key: string): Promise<string[]> {
    return withRedis(url, async (redis) => (await redis.xrange(key, '-', '+')).map(([, fields]) => fields[fields.indexOf('n') + 1] ?? ''));
  }
  /** Script calls Redis has run (EVALSHA and EVAL), from INFO commandstats. */
  async function scriptCalls(url: string): Promise<number> {
    const info = await withRedis(url, (redis) => redis.info('commandstats'));
    let calls = 0;
    for (const match of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) calls += Number(match[1]);
    return calls;
  }

  test('500 concurrent publishes from one instance: distinct ids, ascending in call order; another instance gets all 500 in that order, no gap', { skip: noRedisServer }, async () => {
    // A redis-server of the test's own, so that its count of script calls is this test's alone.
    const redis = new OwnRedis(await freePort(), `secret-${randomUUID()}`, { persistence: false });
    cleanups.push(() => redis.remove());
    await redis.start();
    const key = keys.key(redis.url);
    const a = await instance({ key, url: redis.url, history: 1000 });
    const b = await instance({ key, url: redis.url, history: 1000 });
    const live = await subscribe(b);
    const onA = await subscribe(a);
    const callsBefore = await scriptCalls(redis.url);

    // 250 in one turn: one call.
    const published: Array<Promise<string>> = [];
    for (let n = 0; n < 250; n++) published.push(a.hub.publish('news', { data: `n${n}` }));
    const firstHalf = await Promise.all(published);
    assert.equal((await scriptCalls(redis.url)) - callsBefore, 1, 'the publishes of one turn go as one script call');
    // 250 more, one per turn, none awaited: they come while calls are in flight, and queue behind them.
    for (let n = 250; n < 500; n++) {
      published.push(a.hub.publish('news', { data: `n${n}` }));
      await new Promise(setImmediate);
    }
    const all = await Promise.all(published);
    assert.deepEqual(all.slice(0, 250), firstHalf);
    assert.equal(new Set(all).size, 500, 'every publish has its own id');
    for (let n = 1; n < all.length; n++) assert.ok(compareLogIds(all[n - 1]!, all[n]!) < 0, `id ${n} (${all[n]}) comes after id ${n - 1} (${all[n - 1]})`);
    const calls = (await scriptCalls(redis.url)) - callsBefore;
    assert.ok(calls <= 251, `${calls} script calls for 500 publishes`);

    const expected = all.map((id, n) => ({ id, data: `n${n}` }));
    for (const reader of [live, onA]) {
      await reader.until(() => reader.events.length >= 500, 10_000, 'the 500 events');
      assert.deepEqual(reader.events.map(({ id, data, event }) => ({ id, data, ...(event === undefined ? {} : { event }) })), expected);
    }
    assert.deepEqual(await counts(redis.url, key), Array.from({ length: 500 }, (_, n) => String(n + 1)), 'each entry has the next count');
    assert.equal(b.hub.stats().gaps + a.hub.stats().gaps, 0);
    assert.equal(lostWarnings(a) + lostWarnings(b), 0);
  });

  test('entries of a batch that Redis refuses reject their own publishes only: the others are stored, and the count has no hole', async () => {
    const key = keys.key();
    // The stream's newest id is three below the last possible one: the next three appends fit, the
    // ones after them are refused, within one script call.
    await withRedis(REDIS_URL, async (redis) => {
      await redis.xadd(key, '18446744073709551615-18446744073709551612', 't', '["news"]', 'b', 'data: before\n\n', 'n', '1');
      await redis.set(`${key}:seq`, '1');
    });
    const a = await instance({ key });
    const b = await instance({ key });
    const live = await subscribe(b, 'news', { 'last-event-id': '18446744073709551615-18446744073709551612' });
    const settled = await Promise.allSettled(Array.from({ length: 5 }, (_, n) => a.hub.publish('news', { data: `n${n}` })));
    assert.deepEqual(
      settled.map((result) => (result.status === 'fulfilled' ? result.value : 'refused')),
      ['18446744073709551615-18446744073709551613', '18446744073709551615-18446744073709551614', '18446744073709551615-18446744073709551615', 'refused', 'refused'],
    );
    for (const result of settled.slice(3)) {
      assert.match(String((result as PromiseRejectedResult).reason), /^Error: serve-sse: Redis at redis:\/\/127\.0\.0\.1:\d+ refused the event: ERR The stream has exhausted the last possible ID/);
    }
    // The refused appends gave their numbers back: the counter is the last stored entry's count.
    assert.equal(await withRedis(REDIS_URL, (redis) => redis.get(`${key}:seq`)), '4');
    assert.deepEqual(await counts(REDIS_URL, key), ['1', '2', '3', '4']);
    await live.until(() => live.events.length >= 3, 5000, 'the three stored events');
    await sleep(50);
    assert.deepEqual(datas(live), ['n0', 'n1', 'n2']);
    assert.equal(a.hub.stats().gaps + b.hub.stats().gaps, 0);
  });

  test('a batch refused whole (each entry with its own error): no number is taken, and the next entry follows with no gap', async () => {
    const key = keys.key();
    const redis = await withRedisConnection();
    const a = await instance({ key });
    const b = await instance({ key });
    const live = await subscribe(b);
    await a.hub.publish('news', { data: 'one' });
    await live.until(() => live.events.length >= 1, 5000, 'the first event');

    // The counter holds something that is no count: every INCR fails, before anything is written.
    await redis.set(`${key}:seq`, 'not a number');
    const refused = await Promise.allSettled(Array.from({ length: 5 }, (_, n) => a.hub.publish('news', { data: `refused ${n}` })));
    for (const result of refused) {
      assert.equal(result.status, 'rejected');
      assert.match(String(result.reason), /^Error: serve-sse: Redis at redis:\/\/127\.0\.0\.1:\d+ refused the event: ERR value is not an integer/);
    }
    await redis.set(`${key}:seq`, '1');
    await a.hub.publish('news', { data: 'two' });

    // The stream key holds a string: each XADD fails after its INCR, and each gives its number back.
    const otherKey = `${key}:other`;
    await redis.set(otherKey, 'x');
    const { logger } = recordingLogger();
    const other = createHub({ backplane: redisBackplane({ url: REDIS_URL, key: otherKey, logger }), logger });
    cleanups.push(() => other.close({ timeout: 100 }), () => redis.del(otherKey, `${otherKey}:seq`));
    const wrongType = await Promise.allSettled(Array.from({ length: 5 }, (_, n) => other.publish('news', { data: `x${n}` })));
    for (const result of wrongType) assert.match(String((result as PromiseRejectedResult).reason), /refused the event: WRONGTYPE/);
    assert.equal(await redis.get(`${otherKey}:seq`), '0', 'every number was given back');

    await live.until(() => live.events.length >= 2, 5000, 'the next event');
    await sleep(50);
    assert.deepEqual(live.events.map(({ data, event }) => ({ data, event })), [
      { data: 'one', event: undefined },
      { data: 'two', event: undefined },
    ]);
    assert.deepEqual(await counts(REDIS_URL, key), ['1', '2']);
    assert.equal(a.hub.stats().gaps + b.hub.stats().gaps, 0);
  });

  /** A Redis connection for the test's own commands, closed after the file. */
  async function withRedisConnection(): Promise<Redis> {
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 0 });
    cleanups.push(() => redis.disconnect());
    return redis;
  }

  test('Redis killed mid-batch: every publish settles, stored or "may or may not be stored" (or, never sent, "not published"), and none hangs', { skip: noRedisServer }, async () => {
    const redis = new OwnRedis(await freePort(), `secret-${randomUUID()}`);
    cleanups.push(() => redis.remove());
    await redis.start();
    const key = keys.key(redis.url);
    const a = await instance({ key, url: redis.url, connectTimeout: 1000 });
    await a.hub.publish('news', { data: 'before' });

    type Outcome = { data: string; id?: string; error?: string };
    const outcomes: Array<Promise<Outcome>> = [];
    const publish = (data: string): void => {
      outcomes.push(a.hub.publish('news', { data }).then((id) => ({ data, id }), (error: Error) => ({ data, error: error.message })));
    };
    // A batch in flight, and appends queued behind it, when Redis dies.
    for (let n = 0; n < 500; n++) publish(`batch ${n}`);
    await new Promise(setImmediate);
    for (let n = 0; n < 100; n++) publish(`behind ${n}`);
    const killed = redis.kill();
    for (let n = 0; n < 100; n++) publish(`after ${n}`);
    await killed;

    const started = Date.now();
    const settled = await Promise.race([Promise.all(outcomes), sleep(5000).then(() => undefined)]);
    assert.ok(settled !== undefined, 'every publish settles (connectTimeout is 1000 ms)');
    assert.ok(Date.now() - started < 3000, `publishes settled ${Date.now() - started} ms after Redis died`);
    const unsure = /^serve-sse: Redis at redis:\/\/127\.0\.0\.1:\d+ did not confirm the event \(it may or may not be stored\): /;
    const notSent = /^serve-sse: Redis at redis:\/\/127\.0\.0\.1:\d+ is unreachable; the event was not published$/;
    for (const outcome of settled) {
      if (outcome.error !== undefined) assert.ok(unsure.test(outcome.error) || notSent.test(outcome.error), `${outcome.data}: ${outcome.error}`);
    }
    // One script call is one atomic step: the first batch is stored whole or not at all.
    const batch = settled.slice(0, 500);
    assert.ok(batch.every((outcome) => outcome.id !== undefined) || batch.every((outcome) => outcome.error !== undefined && unsure.test(outcome.error)), 'the batch settles as one');

    // What Redis kept (every write reached its append-only file before its reply) agrees.
    await redis.start();
    const stored = new Map(
      (await withRedis(redis.url, (direct) => direct.xrange(key, '-', '+'))).map(([id, fields]) => [fields[fields.indexOf('b') + 1], { id, n: fields[fields.indexOf('n') + 1] }]),
    );
    for (const outcome of settled) {
      const entry = stored.get(`data: ${outcome.data}\n\n`);
      if (outcome.id !== undefined) assert.equal(entry?.id, outcome.id, `${outcome.data} was stored as its publish said`);
      else if (notSent.test(outcome.error!)) assert.equal(entry, undefined, `${outcome.data} was never sent`);
    }
    assert.deepEqual([...stored.values()].map(({ n }) => n), Array.from({ length: stored.size }, (_, n) => String(n + 1)), 'the counts have no hole');
  });
});

describe('when Redis itself goes away', { skip: noRedisServer }, () => {
  test('serving goes on, publish rejects with a clear error, and the instances carry on when Redis is back', async () => {
    const password = `secret-${randomUUID()}`;
    const redis = new OwnRedis(await freePort(), password);
    cleanups.push(() => redis.remove());
    await redis.start();
    const key = keys.key(redis.url);
    const a = await instance({ key, url: redis.url, keepAlive: 100 });
    const b = await instance({ key, url: redis.url, keepAlive: 100 });
    const live = await subscribe(b);
    const published = [await a.hub.publish('news', { data: 'one' }), await a.hub.publish('news', { data: 'two' })];
    await live.until(() => live.events.length === 2, 5000, 'two events');

    await redis.kill();
    await waitFor(() => !a.hub.stats().backplaneConnected && !b.hub.stats().backplaneConnected, 5000, 'the instances to notice');
    const asked = Date.now();
    await assert.rejects(a.hub.publish('news', { data: 'refused' }), (error: Error) => {
      assert.match(error.message, new RegExp(`Redis at redis://127\\.0\\.0\\.1:${redis.port} is unreachable; the event was not published`));
      assert.ok(!error.message.includes(password), 'the password stays out of the message');
      return true;
    });
    assert.ok(Date.now() - asked < 200, 'publish fails at once');
    // Open streams stay open and keep-alives flow; new clients still replay what B holds.
    const comments = live.comments.length;
    await live.until(() => live.comments.length >= comments + 2, 3000, 'keep-alives');
    assert.equal(live.ended, false);
    const resumed = await subscribe(b, 'news', { 'last-event-id': published[0]! });
    await resumed.until(() => resumed.events.length >= 1, 5000, 'a replay without Redis');
    assert.deepEqual(ids(resumed), [published[1]]);

    await redis.start();
    await waitFor(() => a.hub.stats().backplaneConnected && b.hub.stats().backplaneConnected, 10_000, 'the instances to reconnect');
    published.push(await a.hub.publish('news', { data: 'three' }), await b.hub.publish('news', { data: 'four' }));
    for (const reader of [live, resumed]) await reader.until(() => reader.events.at(-1)?.id === published[3], 5000, 'events after the restart');
    assert.deepEqual(ids(live), published);
    assert.deepEqual(ids(resumed), published.slice(1));
    // The data survived (append-only file): no gap, no reset.
    assert.equal(lostWarnings(a) + lostWarnings(b), 0);
    assert.equal(b.hub.stats().resets, 0);
  });
});

/** Instance A on Redis, B behind a proxy the test can cut, and a client of B that got A's first event. */
async function cutOffPair() {
  const key = keys.key();
  const proxy = await cutOffable();
  const a = await instance({ key });
  const b = await instance({ key, url: proxy.url });
  const live = await subscribe(b);
  const first = await a.hub.publish('news', { data: 'first' });
  await live.until(() => live.events.length === 1, 5000, 'the first event');
  return { key, a, b, proxy, live, first };
}

async function cutOff(proxy: RedisProxy, at: Instance): Promise<void> {
  proxy.cut();
  await waitFor(() => !at.hub.stats().backplaneConnected, 5000, 'the instance to notice');
}

/** A proxy to REDIS_URL that the test can cut, closed after the file. */
async function cutOffable(): Promise<RedisProxy> {
  const proxy = await new RedisProxy(new URL(REDIS_URL)).start();
  cleanups.push(() => proxy.close());
  return proxy;
}

const INSTANCE = fileURLToPath(new URL('./redis-instance.ts', import.meta.url));
/** Joined subscriptions per child instance, as its /stats last said. */
const childConnections = new Map<string, number>();

/** A hub instance in a child process (`node --import tsx`); resolves with its url. */
async function startChild(key: string): Promise<string> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', INSTANCE], {
    env: { ...process.env, REDIS_URL, KEY: key },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  cleanups.push(() => stopChild(child));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [message] = (await Promise.race([once(child, 'message'), once(child, 'exit')])) as [unknown];
  clearTimeout(timer);
  const url = (message as { url?: string } | null)?.url;
  if (url === undefined) throw new Error(`the child instance exited before listening (${String(message)})`);
  // Polled while the test waits: the child's hub counts its subscriptions.
  const poll = setInterval(() => {
    fetch(`${url}/stats`)
      .then((response) => response.json() as Promise<{ connections: number; waiting: number }>)
      .then(({ connections, waiting }) => childConnections.set(url, connections - waiting))
      .catch(() => {});
  }, 20);
  cleanups.push(() => clearInterval(poll));
  return url;
}

/** Asks the child to close (it closes its hub when its parent disconnects), then insists. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.disconnect();
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
