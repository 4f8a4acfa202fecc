/**
 * Issue 10, item 5: moving to a lagging instance never goes backwards. Instance B is cut off from
 * Redis by a TCP proxy while A publishes; A's clients move to B with their Last-Event-ID, while B
 * is cut off or just after it heals. An id newer than what B has heard is not unknown, it is
 * ahead: each client must get exactly the events after its id, in order, once, and no reset.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHub, type Hub } from '../../src/index.js';
import { redisBackplane } from '../../src/backplanes/redis.js';
import { listen, openEvents, recordingLogger, waitFor, type EventReader } from '../helpers.js';
import { REDIS_URL, RedisProxy, redisMissing, TestKeys } from '../redis.js';

const noRedis = await redisMissing();
const keys = new TestKeys();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await keys.cleanUp();
});

async function instance(key: string, url: string): Promise<{ hub: Hub; url: string }> {
  const { logger } = recordingLogger();
  const hub = createHub({ backplane: redisBackplane({ url, key, logger }), logger });
  const running = await listen(hub.handler());
  cleanups.push(async () => {
    await hub.close({ timeout: 500 });
    await running.close();
  });
  return { hub, url: running.url };
}

/**
 * Publishes on `hub` every few ms until stopped; `ids` holds the log's order (one publisher). With
 * `ownIds`, each event carries an id of the publisher's choosing (as Mercure publishers do).
 */
function publisher(hub: Hub, ownIds: boolean): { ids: string[]; stop(): Promise<void> } {
  const ids: string[] = [];
  let running = true;
  const loop = (async () => {
    for (let n = 0; running; n++) {
      ids.push(await hub.publish('news', { data: `n${n}` }, ownIds ? { id: `urn:example:${n}` } : {}));
      await sleep(4);
    }
  })();
  return {
    ids,
    async stop() {
      running = false;
      await loop;
    },
  };
}

const CLIENTS = 5;

async function moveClients(moveAt: 'while cut off' | 'just after the heal', ownIds = false): Promise<string> {
  const key = keys.key();
  const proxy = await new RedisProxy(new URL(REDIS_URL)).start();
  cleanups.push(() => proxy.close());
  const a = await instance(key, REDIS_URL);
  const b = await instance(key, proxy.url);
  const onA: EventReader[] = [];
  for (let n = 0; n < CLIENTS; n++) onA.push(await openEvents(`${a.url}/?topic=news`));
  await waitFor(() => a.hub.stats().connections === CLIENTS && b.hub.stats().backplaneConnected, 5000, 'clients on A, and B connected');
  const published = publisher(a.hub, ownIds);
  await sleep(300);
  proxy.cut();
  await sleep(moveAt === 'while cut off' ? 1500 : 3000);
  if (moveAt === 'just after the heal') {
    proxy.restore();
    await sleep(150);
  }
  // Each client leaves A with what it had, and resumes on B from its last id.
  const moved: Array<{ from: string; reader: EventReader }> = [];
  for (const reader of onA) {
    reader.res.destroy();
    const from = reader.events.at(-1)!.id!;
    moved.push({ from, reader: await openEvents(`${b.url}/?topic=news`, { 'last-event-id': from }) });
  }
  if (moveAt === 'while cut off') {
    await sleep(1500);
    proxy.restore();
  }
  await waitFor(() => b.hub.stats().backplaneConnected, 10_000, 'B to reconnect');
  await sleep(500);
  await published.stop();
  const all = published.ids;
  for (const { from, reader } of moved) {
    const expected = all.slice(all.indexOf(from) + 1);
    await reader.until(() => reader.events.length >= expected.length, 15_000, `the ${expected.length} events after ${from}`);
    await sleep(100);
    const resets = reader.events.filter((event) => event.event === 'reset');
    const got = reader.events.filter((event) => event.event !== 'reset').map((event) => event.id);
    const duplicates = got.length - new Set(got).size;
    const older = got.filter((id) => !expected.includes(id!)).length;
    const problem = `${resets.length} resets (${resets.map((reset) => reset.data).join(', ')}), ${duplicates} duplicates, ${older} events older than the id`;
    assert.ok(resets.length === 0 && duplicates === 0 && older === 0, `from ${from}: ${problem}`);
    assert.deepEqual(got, expected, 'exactly the events after the id, in order');
    reader.res.destroy();
  }
  return `${all.length} published; ${CLIENTS} clients moved ${moveAt}, each got exactly what followed its id`;
}

describe('item 5: a client moving to a lagging instance', { skip: noRedis }, () => {
  test('moved while the instance is cut off from Redis: waits for it, no reset, no duplicate', async (t) => {
    t.diagnostic(await moveClients('while cut off'));
  });

  test('moved 150 ms after the instance heals: the same', async (t) => {
    t.diagnostic(await moveClients('just after the heal'));
  });

  test('ids chosen by the publisher: the instance waits until it has heard the log as it was, then resumes exactly', async (t) => {
    t.diagnostic(await moveClients('while cut off', true));
  });
});
