/**
 * Issue 10, item 6: the cost of a replay is proportional to what it sends. 1,000 events on each
 * of 100 topics in the history; subscribers of 100 other topics resume from the oldest id and are
 * owed nothing: finding that out must not scan the history. Measured in a child process.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { get, openEvents, text } from '../helpers.js';
import { startHubProcess, type HubProcess } from './hub-process.js';

const TOPICS = 100;
const PER_TOPIC = 1000;

const processes: HubProcess[] = [];
after(() => Promise.all(processes.map((hub) => hub.stop())));

describe('item 6: replay cost', () => {
  test('subscribing to 100 topics with nothing to replay costs well under a millisecond', async (t) => {
    const hub = await startHubProcess({ kind: 'library', options: { history: TOPICS * PER_TOPIC } });
    processes.push(hub);
    const busy = Array.from({ length: TOPICS }, (_, n) => `busy-${n}`);
    const quiet = Array.from({ length: TOPICS }, (_, n) => `quiet-${n}`);
    const [oldest] = await hub.publish(busy[0]!, PER_TOPIC, 16);
    for (const topic of busy.slice(1)) await hub.publish(topic, PER_TOPIC, 16);
    assert.equal((await hub.stats()).history, TOPICS * PER_TOPIC);

    const SUBSCRIBES = 200;
    const cpu = await hub.subscribeCpu(SUBSCRIBES, quiet, oldest!);
    const perSubscribe = cpu / SUBSCRIBES / 1000;
    t.diagnostic(`${perSubscribe.toFixed(3)} ms of CPU per subscribe (${SUBSCRIBES} subscribes)`);
    assert.ok(perSubscribe < 1, `${perSubscribe.toFixed(3)} ms per subscribe`);

    // And a subscriber of one busy topic gets exactly that topic's events after its id.
    const reader = await openEvents(`${hub.url}/?topic=${busy[1]}`, { 'last-event-id': oldest! });
    await reader.until(() => reader.events.length === PER_TOPIC, 10_000, 'the replay of one topic');
    assert.ok(reader.events.every((event, n) => event.data.startsWith(`${n} `)));
    reader.res.destroy();
  });

  test('200 such subscribers connecting at once do not hold up other requests', async (t) => {
    const hub = await startHubProcess({ kind: 'server', options: { history: TOPICS * PER_TOPIC, maxConnectionsPerIp: 0 } });
    processes.push(hub);
    const busy = Array.from({ length: TOPICS }, (_, n) => `busy-${n}`);
    const first = await hub.publish(busy[0]!, PER_TOPIC, 16);
    for (const topic of busy.slice(1)) await hub.publish(topic, PER_TOPIC, 16);
    const query = Array.from({ length: TOPICS }, (_, n) => `topic=quiet-${n}`).join('&');
    const started = Date.now();
    const storm = Promise.all(Array.from({ length: 200 }, () => get(`${hub.url}/events?${query}`, { 'last-event-id': first[0]! })));
    const health = await get(`${hub.url}/healthz`);
    await text(health);
    const took = Date.now() - started;
    for (const res of await storm) res.destroy();
    t.diagnostic(`/healthz answered in ${took} ms during the storm`);
    assert.equal(health.statusCode, 200);
    assert.ok(took < 1000, `/healthz took ${took} ms`);
  });
});
