/** `GET /events` of the hub server, through real HTTP: tokens, topics, replay, expiry, caps, CORS. */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { get, openEvents, text, waitFor, type EventReader } from '../helpers.js';
import {
  closeAll,
  metric,
  PUBLISHER_KEY,
  publishJson,
  publisherToken,
  send,
  startHub,
  SUBSCRIBER_KEY,
  subscriberToken,
  unsecuredToken,
  type TestHub,
} from './hub-helpers.js';

after(closeAll);

const secured = (options = {}): Promise<TestHub> => startHub({ publisherKey: PUBLISHER_KEY, subscriberKey: SUBSCRIBER_KEY, ...options });

async function publishTo(hub: TestHub, topics: string[], data: string): Promise<string> {
  const answer = await publishJson(hub, await publisherToken(['*']), { topics, data });
  assert.equal(answer.status, 200, answer.body);
  return answer.body;
}

describe('open subscribing (no --subscriber-key)', () => {
  test('anyone subscribes to the topics of the query, and gets only those', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const reader = await openEvents(`${hub.url}/events?topic=a&topic=b`);
    assert.equal(reader.res.statusCode, 200);
    assert.match(String(reader.res.headers['content-type']), /^text\/event-stream/);
    await publishTo(hub, ['c'], 'c only');
    const a = await publishTo(hub, ['a'], 'to a');
    const b = await publishTo(hub, ['b', 'c'], 'to b and c');
    await reader.until(() => reader.events.length === 2);
    assert.deepEqual(reader.events.map((event) => [event.id, event.data]), [[a, 'to a'], [b, 'to b and c']]);
    reader.res.destroy();
  });

  test('400 without a topic, or with a topic that breaks the rules; the body says why', async () => {
    const hub = await startHub();
    for (const [query, reason] of [
      ['', /no topic given: subscribe with \/events\?topic=NAME/],
      ['?topic=', /invalid topic ""/],
      ['?topic=a%20b', /whitespace/],
      ['?topic=%2A', /reserved/],
      [`?topic=${'x'.repeat(300)}`, /at most 256/],
      [`?${Array.from({ length: 101 }, (_, n) => `topic=t${n}`).join('&')}`, /at most 100/],
    ] as const) {
      const answer = await send(`${hub.url}/events${query}`, { headers: { accept: 'text/event-stream' } });
      assert.equal(answer.status, 400, `${query}: ${answer.body}`);
      assert.match(answer.body, reason);
    }
  });

  test('replay after Last-Event-ID, and after the lastEventId query parameter', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const first = await publishTo(hub, ['r'], 'one');
    await publishTo(hub, ['other'], 'not for r');
    const second = await publishTo(hub, ['r'], 'two');
    const third = await publishTo(hub, ['r'], 'three');
    const byHeader = await openEvents(`${hub.url}/events?topic=r`, { 'last-event-id': first });
    const byQuery = await openEvents(`${hub.url}/events?topic=r&lastEventId=${encodeURIComponent(first)}`);
    for (const reader of [byHeader, byQuery]) {
      await reader.until(() => reader.events.length === 2);
      assert.deepEqual(reader.events.map((event) => [event.id, event.data]), [[second, 'two'], [third, 'three']]);
    }
    const fourth = await publishTo(hub, ['r'], 'four');
    await byHeader.until(() => byHeader.events.length === 3);
    assert.equal(byHeader.events[2]?.id, fourth);
    byHeader.res.destroy();
    byQuery.res.destroy();
    await waitFor(() => hub.hub.stats().connections === 0);
    assert.ok(hub.hub.stats().replayed >= 4);
  });
});

describe('subscriber tokens (--subscriber-key)', () => {
  test('a Bearer token or the sse_token cookie lets a subscriber in, to the topics it grants', async () => {
    const hub = await secured();
    const token = await subscriberToken(['a']);
    const bearer = await openEvents(`${hub.url}/events?topic=a`, { authorization: `Bearer ${token}` });
    const cookie = await openEvents(`${hub.url}/events?topic=a`, { cookie: `theme=dark; sse_token=${token}; other=1` });
    assert.equal(bearer.res.statusCode, 200);
    assert.equal(cookie.res.statusCode, 200);
    const id = await publishTo(hub, ['a'], 'hello');
    for (const reader of [bearer, cookie]) {
      await reader.until(() => reader.events.length === 1);
      assert.equal(reader.events[0]?.id, id);
      reader.res.destroy();
    }
  });

  test('401 without a token, or with a bad one, with a Bearer challenge; the stream never opens', async () => {
    const hub = await secured();
    const past = Math.floor(Date.now() / 1000) - 5;
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      ['none', {}, /subscriber token is required/],
      ['publisher key', { authorization: `Bearer ${await subscriberToken(['*'], { key: PUBLISHER_KEY })}` }, /signature/],
      ['expired', { authorization: `Bearer ${await subscriberToken(['*'], { exp: past })}` }, /expired/],
      ['alg none', { authorization: `Bearer ${unsecuredToken({ sse: { subscribe: ['*'] } })}` }, /invalid token/],
      ['HS512', { authorization: `Bearer ${await subscriberToken(['*'], { alg: 'HS512' })}` }, /algorithm/],
      ['bad cookie', { cookie: 'sse_token=garbage' }, /invalid token/],
      ['not Bearer', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, /required/],
    ];
    for (const [name, headers, reason] of cases) {
      const answer = await send(`${hub.url}/events?topic=a`, { headers: { accept: 'text/event-stream', ...headers } });
      assert.equal(answer.status, 401, `${name}: ${answer.body}`);
      assert.match(answer.body, reason, name);
      assert.match(String(answer.headers['www-authenticate']), /^Bearer/, name);
      assert.doesNotMatch(String(answer.headers['content-type']), /event-stream/, name);
    }
    assert.equal(hub.hub.stats().connections, 0);
  });

  test('403 for a topic the token does not allow, even alongside allowed ones', async () => {
    const hub = await secured();
    const token = await subscriberToken(['a', 'b']);
    for (const query of ['topic=c', 'topic=a&topic=c', 'topic=b&topic=a&topic=secret']) {
      const answer = await send(`${hub.url}/events?${query}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(answer.status, 403, `${query}: ${answer.body}`);
      assert.match(answer.body, /does not allow you to subscribe to "(c|secret)"/);
    }
    const noClaim = await send(`${hub.url}/events?topic=a`, { headers: { authorization: `Bearer ${await publisherToken(['a'], { key: SUBSCRIBER_KEY })}` } });
    assert.equal(noClaim.status, 403, 'a token with only sse.publish cannot subscribe');
    assert.match(noClaim.body, /no sse\.subscribe claim/);
  });

  test('a subscriber never receives an event of a topic its token does not allow', async () => {
    const hub = await secured();
    const token = await subscriberToken(['allowed']);
    const reader = await openEvents(`${hub.url}/events?topic=allowed`, { authorization: `Bearer ${token}` });
    const expected: string[] = [];
    const topics = [['allowed'], ['secret'], ['secret', 'allowed'], ['allowed2'], ['secret'], ['allowed', 'x']];
    for (const [n, list] of topics.entries()) {
      const id = await publishTo(hub, list, `event ${n}`);
      if (list.includes('allowed')) expected.push(id);
    }
    await reader.until(() => reader.events.length === expected.length);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(reader.events.map((event) => event.id), expected);
    reader.res.destroy();
  });

  test('"*" grants every topic', async () => {
    const hub = await secured();
    const reader = await openEvents(`${hub.url}/events?topic=anything&topic=else`, { authorization: `Bearer ${await subscriberToken(['*'])}` });
    assert.equal(reader.res.statusCode, 200);
    reader.res.destroy();
  });

  test('a subscriber is disconnected when its token expires, and cannot come back with it', async () => {
    const hub = await secured();
    // JWT expiry has whole seconds: 2 to 3 s from now, time enough on a busy machine.
    const exp = Math.floor(Date.now() / 1000) + 3;
    const token = await subscriberToken(['a'], { exp });
    const expiring = await openEvents(`${hub.url}/events?topic=a`, { authorization: `Bearer ${token}` });
    const lasting = await openEvents(`${hub.url}/events?topic=a`, { authorization: `Bearer ${await subscriberToken(['a'], { exp: exp + 60 })}` });
    await publishTo(hub, ['a'], 'before');
    await expiring.until(() => expiring.events.length === 1);
    await expiring.until(() => expiring.ended, 6000, 'the stream to end at expiry');
    const endedAt = Date.now();
    assert.ok(endedAt >= exp * 1000, `not before exp: ended ${exp * 1000 - endedAt} ms early`);
    assert.ok(endedAt < exp * 1000 + 2000, `soon after exp: ${endedAt - exp * 1000} ms late`);
    assert.ok(expiring.comments.includes('token expired'));
    assert.equal(lasting.ended, false, 'a token that has not expired keeps its stream');
    await publishTo(hub, ['a'], 'after');
    await lasting.until(() => lasting.events.length === 2);
    assert.equal(expiring.events.length, 1);

    const again = await send(`${hub.url}/events?topic=a`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(again.status, 401);
    const scraped = await send(`${hub.url}/metrics`);
    assert.equal(metric(scraped.body, 'serve_sse_token_expired_total'), 1);
    assert.ok(hub.logs.some((line) => line.msg === 'subscriber disconnected' && line.reason === 'token expired'));
    lasting.res.destroy();
  });

  test('a real EventSource client (the eventsource package) subscribes with a Bearer token', async () => {
    const hub = await secured();
    const token = await subscriberToken(['live']);
    const source = new EventSource(`${hub.url}/events?topic=live`, {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...init?.headers, authorization: `Bearer ${token}` } }),
    });
    try {
      const received: Array<{ type: string; data: string; id: string }> = [];
      source.addEventListener('score', (event) => received.push({ type: event.type, data: event.data, id: event.lastEventId }));
      await new Promise<void>((resolve, reject) => {
        source.onopen = () => resolve();
        source.onerror = (error) => reject(new Error(`EventSource error: ${String(error.message)}`));
      });
      const answer = await publishJson(hub, await publisherToken(['live']), { topic: 'live', event: 'score', data: { home: 2, away: 1 } });
      await waitFor(() => received.length === 1);
      assert.deepEqual(received[0], { type: 'score', data: '{"home":2,"away":1}', id: answer.body });
    } finally {
      source.close();
    }
  });
});

describe('per-address connection cap', () => {
  test('past --max-connections-per-ip, 429 with a clear body; a slot frees when a stream closes', async () => {
    const hub = await startHub({ maxConnectionsPerIp: 3 });
    const readers: EventReader[] = [];
    for (let n = 0; n < 3; n++) readers.push(await openEvents(`${hub.url}/events?topic=a`));
    assert.ok(readers.every((reader) => reader.res.statusCode === 200));
    const refused = await send(`${hub.url}/events?topic=a`);
    assert.equal(refused.status, 429);
    assert.match(refused.body, /too many event streams from 127\.0\.0\.1: at most 3/);
    readers.pop()?.res.destroy();
    await waitFor(() => hub.hub.stats().connections === 2);
    // The server hears of the close a moment after the hub does: try for a while.
    let reader: EventReader | undefined;
    for (let attempt = 0; attempt < 50 && reader === undefined; attempt++) {
      const opened = await openEvents(`${hub.url}/events?topic=a`);
      if (opened.res.statusCode === 200) reader = opened;
      else {
        opened.res.destroy();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    assert.ok(reader !== undefined, 'a slot freed up');
    readers.push(reader);
    for (const open of readers) open.res.destroy();
  });

  test('behind a proxy (--trust-proxy) the cap counts the last X-Forwarded-For address', async () => {
    const hub = await startHub({ maxConnectionsPerIp: 1, trustProxy: true });
    const first = await openEvents(`${hub.url}/events?topic=a`, { 'x-forwarded-for': '203.0.113.9, 198.51.100.1' });
    const other = await openEvents(`${hub.url}/events?topic=a`, { 'x-forwarded-for': '198.51.100.2' });
    assert.equal(first.res.statusCode, 200);
    assert.equal(other.res.statusCode, 200, 'another client address has its own slots');
    const again = await send(`${hub.url}/events?topic=a`, { headers: { 'x-forwarded-for': '10.0.0.1, 198.51.100.1' } });
    assert.equal(again.status, 429, 'the spoofable first entry is ignored');
    first.res.destroy();
    other.res.destroy();
  });

  test('0 means no cap', async () => {
    const hub = await startHub({ maxConnectionsPerIp: 0 });
    const readers = await Promise.all(Array.from({ length: 120 }, () => openEvents(`${hub.url}/events?topic=a`)));
    assert.ok(readers.every((reader) => reader.res.statusCode === 200));
    for (const reader of readers) reader.res.destroy();
  });
});

describe('CORS on /events', () => {
  test('a listed origin reads the stream with credentials; its preflight is answered', async () => {
    const hub = await secured({ cors: ['https://app.example', 'https://admin.example'] });
    const token = await subscriberToken(['a']);
    const reader = await openEvents(`${hub.url}/events?topic=a`, { origin: 'https://admin.example', cookie: `sse_token=${token}` });
    assert.equal(reader.res.statusCode, 200);
    assert.equal(reader.res.headers['access-control-allow-origin'], 'https://admin.example');
    assert.equal(reader.res.headers['access-control-allow-credentials'], 'true');
    reader.res.destroy();
    const preflight = await send(`${hub.url}/events?topic=a`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization, last-event-id' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(String(preflight.headers['access-control-allow-headers']), /last-event-id/);
  });

  test('another origin gets 403 before any token is looked at', async () => {
    const hub = await secured({ cors: ['https://app.example'] });
    const res = await get(`${hub.url}/events?topic=a`, { origin: 'https://evil.example', authorization: `Bearer ${await subscriberToken(['a'])}` });
    assert.equal(res.statusCode, 403);
    assert.match(await text(res), /not allowed/);
    assert.equal(hub.hub.stats().connections, 0);
  });

  test('"*" allows any origin, without credentials', async () => {
    const hub = await startHub({ cors: '*' });
    const reader = await openEvents(`${hub.url}/events?topic=a`, { origin: 'https://anywhere.example' });
    assert.equal(reader.res.headers['access-control-allow-origin'], '*');
    assert.equal(reader.res.headers['access-control-allow-credentials'], undefined);
    reader.res.destroy();
  });
});

describe('connection logs', () => {
  test('one line when a stream opens and one when it closes, with its duration', async () => {
    const hub = await startHub();
    const reader = await openEvents(`${hub.url}/events?topic=logged`);
    await waitFor(() => hub.logs.some((line) => line.msg === 'subscriber connected'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    reader.res.destroy();
    await waitFor(() => hub.logs.some((line) => line.msg === 'subscriber disconnected'));
    const opened = hub.logs.filter((line) => line.msg === 'subscriber connected');
    const closed = hub.logs.filter((line) => line.msg === 'subscriber disconnected');
    assert.equal(opened.length, 1);
    assert.equal(closed.length, 1);
    assert.deepEqual(opened[0]?.topics, ['logged']);
    assert.equal(opened[0]?.ip, '127.0.0.1');
    assert.equal(closed[0]?.conn, opened[0]?.conn);
    assert.equal(typeof closed[0]?.durationMs, 'number');
    assert.ok((closed[0]?.durationMs as number) >= 40);
    assert.equal(opened[0]?.level, 30, 'info');
  });
});
