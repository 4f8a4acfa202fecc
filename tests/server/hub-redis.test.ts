/**
 * `serve-sse hub --redis`: two hub servers on one Redis stream act as one. Needs Redis at
 * REDIS_URL (skipped loudly without it, failed under CI=true; see tests/redis.ts).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { openEvents, waitFor } from '../helpers.js';
import { REDIS_URL, redisMissing, TestKeys } from '../redis.js';
import { closeAll, metric, publishJson, publisherToken, PUBLISHER_KEY, send, startHub } from './hub-helpers.js';

const noRedis = await redisMissing();
const keys = new TestKeys();
after(async () => {
  await closeAll();
  await keys.cleanUp();
});

describe('serve-sse hub --redis', { skip: noRedis }, () => {
  test('a publication on one server reaches subscribers of another; a client resumes on either', async () => {
    const redisKey = keys.key();
    const [a, b] = await Promise.all([1, 2].map(() => startHub({ redis: REDIS_URL, redisKey, publisherKey: PUBLISHER_KEY })));
    const onB = await openEvents(`${b!.url}/events?topic=news`);
    await waitFor(() => b!.hub.stats().connections === 1);
    const token = await publisherToken(['news']);
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      const answer = await publishJson(a!, token, { topic: 'news', data: `n${n}` });
      assert.equal(answer.status, 200, answer.body);
      ids.push(answer.body);
    }
    await onB.until(() => onB.events.length === 3);
    assert.deepEqual(onB.events.map((e) => [e.id, e.data]), ids.map((id, i) => [id, `n${i + 1}`]));
    // Resuming on A with the first id B gave: exactly the two after it.
    const onA = await openEvents(`${a!.url}/events?topic=news`, { 'last-event-id': ids[0]! });
    await onA.until(() => onA.events.length === 2);
    assert.deepEqual(onA.events.map((e) => e.id), ids.slice(1));
    const metrics = await send(`${b!.url}/metrics`);
    assert.equal(metric(metrics.body, 'serve_sse_backplane_connected'), 1);
    onA.res.destroy();
    onB.res.destroy();
  });
});
