/**
 * Fault injection on the Redis backplane, with real processes: an instance frozen (SIGSTOP, as in a
 * long GC pause) while the stream is trimmed past what it read, and a redis-server killed and
 * restarted, with and without its data. Whatever happens, each client of an instance either
 * receives every event, in order, once, or is told by a reset event that it missed some: nothing
 * acknowledged is lost without a word.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, describe, test } from 'node:test';
import type { EventSourceMessage } from 'eventsource-parser';
import { createHub, type Hub } from '../../src/index.js';
import { redisBackplane } from '../../src/backplanes/redis.js';
import { compareLogIds } from '../../src/backplanes/log-id.js';
import { listen, openEvents, recordingLogger, waitFor, type EventReader } from '../helpers.js';
import { freePort, OwnRedis, REDIS_URL, redisMissing, redisServerMissing, startInstanceProcess, TestKeys, withRedis } from '../redis.js';

const noRedis = await redisMissing();
const noRedisServer = noRedis || redisServerMissing();

const keys = new TestKeys();
/** Undone last first, after each test: processes, hubs, clients, servers. */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
after(() => keys.cleanUp());

/** The reset event a client gets for a gap, as the hub sends it. */
interface Reset {
  lastEventId: string;
  reason: string;
}

/** What one client's stream says about the events that were published. */
interface Audit {
  /** Published, not received, and no reset between the event before them and the event after. */
  lostSilently: number;
  /** Published, not received, announced by a reset. */
  announced: number;
  received: number;
  resets: number;
  /** Anything else wrong: duplicates, events out of order, unknown ids, malformed resets. */
  problems: string[];
}

/**
 * Walks `published` (ids in log order) along the client's `events`: each id must be received, in
 * order, once, or fall in a run of missing ones that a reset event announced, after the last event
 * received before the run and before the first received after it.
 */
function audit(published: readonly string[], events: readonly EventSourceMessage[]): Audit {
  const result: Audit = { lostSilently: 0, announced: 0, received: 0, resets: 0, problems: [] };
  const position = new Map(published.map((id, index) => [id, index]));
  let next = 0;
  let lastReceived = '';
  let reset: Reset | undefined;
  for (const event of events) {
    if (event.event === 'reset') {
      result.resets++;
      reset = JSON.parse(event.data) as Reset;
      if (reset.reason !== 'expired' || reset.lastEventId !== lastReceived) {
        result.problems.push(`reset ${event.data} after ${lastReceived || 'nothing'}`);
      }
      continue;
    }
    const index = position.get(event.id ?? '');
    if (index === undefined || index < next) {
      result.problems.push(`${event.id} ${index === undefined ? 'was never published' : 'came again, or out of order'}`);
      continue;
    }
    const missing = index - next;
    if (reset !== undefined) result.announced += missing;
    else result.lostSilently += missing;
    result.received++;
    next = index + 1;
    lastReceived = event.id ?? '';
    reset = undefined;
  }
  if (next < published.length) result.problems.push(`the last ${published.length - next} published never arrived`);
  return result;
}

/** Publishes `count` events to `news`, `inFlight` at a time; resolves with their ids in log order. */
async function publishMany(hub: Hub, count: number, inFlight = 16): Promise<string[]> {
  const ids: string[] = [];
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < count) ids.push(await hub.publish('news', { data: `burst ${started++}` }));
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return ids.sort(compareLogIds);
}

/** A client of `topic` at `url`, hung up after the test. */
async function client(url: string, topic = 'news'): Promise<EventReader> {
  const reader = await openEvents(`${url}/events?topic=${topic}`);
  cleanups.push(() => reader.res.destroy());
  return reader;
}

/** A hub on the Redis backplane in this process, serving on 127.0.0.1:0, closed after the test. */
async function localInstance(key: string, url: string, history?: number) {
  const { logger, lines } = recordingLogger();
  const hub = createHub({ history, logger, backplane: redisBackplane({ url, key, logger }) });
  const running = await listen(hub.handler());
  cleanups.push(async () => {
    await hub.close({ timeout: 500 });
    await running.close();
  });
  return { hub, url: running.url, lines };
}

describe('an instance frozen while the stream is trimmed past it', { skip: noRedis }, () => {
  test('SIGSTOP through 3,000 publications with history 1,000: each client gets every event or a reset before the rest', async (t) => {
    const key = keys.key();
    const b = await startInstanceProcess({ REDIS_URL, KEY: key, HISTORY: '1000' });
    cleanups.push(() => b.stop());
    const clients = [await client(b.url), await client(b.url), await client(b.url)];
    const deadline = Date.now() + 5000;
    const joinedOnB = async (): Promise<number> => {
      const { connections, waiting } = await b.stats();
      return Number(connections) - Number(waiting);
    };
    while ((await joinedOnB()) !== clients.length) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the subscriptions on B');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const a = await localInstance(key, REDIS_URL, 1000);
    const published = [await a.hub.publish('news', { data: 'before' })];
    for (const reader of clients) await reader.until(() => reader.events.length === 1, 5000, 'the first event');

    process.kill(b.pid, 'SIGSTOP');
    try {
      published.push(...(await publishMany(a.hub, 3000)));
    } finally {
      // Whatever happened, B runs again: a stopped process is never left behind.
      process.kill(b.pid, 'SIGCONT');
    }
    published.push(await a.hub.publish('news', { data: 'after' }));
    for (const reader of clients) await reader.until(() => reader.events.at(-1)?.id === published.at(-1), 10_000, 'the event published after B resumed');

    const stats = await b.stats();
    const audits = clients.map((reader) => audit(published, reader.events));
    for (const [n, { lostSilently, announced, received, resets }] of audits.entries()) {
      t.diagnostic(`client ${n + 1} of B: received ${received}, lost silently ${lostSilently}, announced by a reset ${announced}, resets ${resets}`);
    }
    t.diagnostic(`B's stats: gaps ${String(stats.gaps)}, resets ${String(stats.resets)}`);
    for (const [n, result] of audits.entries()) {
      assert.deepEqual(result.problems, [], `client ${n + 1}`);
      assert.equal(result.lostSilently, 0, `client ${n + 1} lost ${result.lostSilently} events silently (resets: ${result.resets})`);
    }
    assert.ok(Number(stats.gaps) >= 1, `B counted ${String(stats.gaps)} gaps`);
    assert.ok(Number(stats.resets) >= clients.length, `B sent ${String(stats.resets)} resets to ${clients.length} clients`);
  });
});

describe('a redis-server killed and restarted while instances are connected', { skip: noRedisServer }, () => {
  /** Instances A and B on a redis-server of the test's own, two clients of B, and two events they got. */
  async function setUp(persistence: boolean) {
    const redis = new OwnRedis(await freePort(), `secret-${randomUUID()}`, { persistence });
    cleanups.push(() => redis.remove());
    await redis.start();
    const key = keys.key(redis.url);
    const a = await localInstance(key, redis.url);
    const b = await localInstance(key, redis.url);
    const clients = [await client(b.url), await client(b.url)];
    await waitFor(() => b.hub.stats().connections - b.hub.stats().waiting === clients.length, 5000, 'the subscriptions on B');
    const published = [await a.hub.publish('news', { data: 'one' }), await a.hub.publish('news', { data: 'two' })];
    for (const reader of clients) await reader.until(() => reader.events.length === 2, 5000, 'two events');
    await redis.kill();
    await waitFor(() => !a.hub.stats().backplaneConnected && !b.hub.stats().backplaneConnected, 5000, 'the instances to notice');
    await redis.start();
    await waitFor(() => a.hub.stats().backplaneConnected && b.hub.stats().backplaneConnected, 10_000, 'the instances to reconnect');
    return { redis, key, a, b, clients, published };
  }

  test('without persistence, Redis comes back empty: the next event reaches B’s clients after a reset', async () => {
    const { b, a, clients, published } = await setUp(false);
    const fresh = await a.hub.publish('news', { data: 'three' });
    for (const reader of clients) {
      await reader.until(() => reader.events.at(-1)?.id === fresh, 5000, 'the event after the restart');
      assert.deepEqual(
        reader.events.map(({ id, event, data }) => ({ id, event, data })),
        [
          { id: published[0], event: undefined, data: 'one' },
          { id: published[1], event: undefined, data: 'two' },
          { id: fresh, event: 'reset', data: JSON.stringify({ lastEventId: published[1], reason: 'expired' }) },
          { id: fresh, event: undefined, data: 'three' },
        ],
      );
    }
    assert.equal(b.hub.stats().gaps, 1);
    assert.equal(b.hub.stats().resets, clients.length);
  });

  test('with appendonly always, nothing acknowledged is lost and no reset is sent: the counter carries on', async () => {
    const { redis, key, a, b, clients, published } = await setUp(true);
    published.push(await a.hub.publish('news', { data: 'three' }), await b.hub.publish('news', { data: 'four' }));
    for (const reader of clients) {
      await reader.until(() => reader.events.at(-1)?.id === published[3], 5000, 'the events after the restart');
      assert.deepEqual(
        reader.events.map(({ id, event, data }) => ({ id, event, data })),
        published.map((id, n) => ({ id, event: undefined, data: ['one', 'two', 'three', 'four'][n] })),
      );
    }
    assert.equal(a.hub.stats().gaps + b.hub.stats().gaps, 0);
    assert.equal(b.hub.stats().resets, 0);
    const counters = await withRedis(redis.url, async (connection) => {
      const entries = await connection.xrange(key, '-', '+');
      return entries.map(([, fields]) => fields[fields.indexOf('n') + 1]);
    });
    assert.deepEqual(counters, ['1', '2', '3', '4']);
  });
});
