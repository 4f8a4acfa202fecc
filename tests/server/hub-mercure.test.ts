/**
 * Mercure as the hub server mounts it: the RFC 9728 metadata, the challenge that names it, the
 * per-address cap shared with /events, keep-alive comments, the drain at shutdown, metrics.
 * The protocol itself is tested in tests/protocols/mercure.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { openEvents, type EventReader } from '../helpers.js';
import { closeAll, metric, PUBLISHER_KEY, send, sign, startHub, SUBSCRIBER_KEY } from './hub-helpers.js';

after(closeAll);

const MERCURE = '/.well-known/mercure';
const METADATA = '/.well-known/oauth-protected-resource/.well-known/mercure';
const topicQuery = `topic=${encodeURIComponent('https://example.com/books/{id}')}`;

/** A form publication as Symfony's client sends it. */
function publish(url: string, fields: Record<string, string>): ReturnType<typeof send> {
  return sign({ mercure: { publish: ['*'] } }).then((token) =>
    send(`${url}${MERCURE}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    }),
  );
}

describe('the hub server\'s Mercure endpoint', () => {
  test('RFC 9728 metadata: the resource, how tokens may come, the draft; a 401 challenge points to it', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, subscriberKey: SUBSCRIBER_KEY, publicUrl: 'https://hub.example.com' });
    const answer = await send(`${hub.url}${METADATA}`);
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers['content-type']), /^application\/json/);
    const metadata = JSON.parse(answer.body) as Record<string, unknown>;
    assert.equal(metadata.resource, 'https://hub.example.com/.well-known/mercure');
    assert.deepEqual(metadata.bearer_methods_supported, ['header', 'query']);
    assert.equal(metadata.mercure_cookie, true);
    assert.equal(metadata.mercure_version, 8);
    assert.equal((await send(`${hub.url}${METADATA}`, { method: 'POST' })).status, 405);

    // Without a token, with a subscriber key and no --anonymous: 401, and where to look.
    const refused = await send(`${hub.url}${MERCURE}?${topicQuery}`, { headers: { accept: 'text/event-stream' } });
    assert.equal(refused.status, 401);
    assert.match(String(refused.headers['www-authenticate']), /^Bearer /);
    assert.match(String(refused.headers['www-authenticate']), /resource_metadata="https:\/\/hub\.example\.com\/\.well-known\/oauth-protected-resource\/\.well-known\/mercure"/);
    // A publication without a token too.
    const unsigned = await send(`${hub.url}${MERCURE}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'topic=a&data=x' });
    assert.equal(unsigned.status, 401);
    assert.match(String(unsigned.headers['www-authenticate']), /resource_metadata=/);
  });

  test('without --jwt-audience, the resource the metadata names (under --public-url) is the audience at+jwt tokens are checked against', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, publicUrl: 'https://hub.example.com' });
    const { resource } = JSON.parse((await send(`${hub.url}${METADATA}`)).body) as { resource: string };
    const token = (aud: string): Promise<string> =>
      new SignJWT({ aud, authorization_details: [{ type: 'mercure', actions: ['publish'], topics: [{ match: '*' }] }] })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(PUBLISHER_KEY));
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const accepted = await send(`${hub.url}${MERCURE}`, { method: 'POST', headers: { ...form, authorization: `Bearer ${await token(resource)}` }, body: 'topic=https%3A%2F%2Fexample.com%2F1&data=x' });
    assert.equal(accepted.status, 200, accepted.body);
    const other = await send(`${hub.url}${MERCURE}`, { method: 'POST', headers: { ...form, authorization: `Bearer ${await token('https://other.example/')}` }, body: 'topic=https%3A%2F%2Fexample.com%2F1&data=x' });
    assert.equal(other.status, 401);
  });

  test('--jwt-audience is the resource the metadata names', async () => {
    const hub = await startHub({ jwtAudience: 'urn:example:hub' });
    const metadata = JSON.parse((await send(`${hub.url}${METADATA}`)).body) as Record<string, unknown>;
    assert.equal(metadata.resource, 'urn:example:hub');
  });

  test('one per-address cap for /events and Mercure streams: the one past it gets 429, and a slot frees when a stream ends', async () => {
    const hub = await startHub({ maxConnectionsPerIp: 2 });
    const readers: EventReader[] = [await openEvents(`${hub.url}/events?topic=a`), await openEvents(`${hub.url}${MERCURE}?${topicQuery}`)];
    assert.deepEqual(readers.map((reader) => reader.res.statusCode), [200, 200]);
    const over = await send(`${hub.url}${MERCURE}?${topicQuery}`, { headers: { accept: 'text/event-stream' } });
    assert.equal(over.status, 429);
    assert.match(over.body, /at most 2/);
    readers[0]!.res.destroy();
    // The slot is released when the server sees the stream end: bounded wait.
    const deadline = Date.now() + 5000;
    let again: EventReader | undefined;
    while (again === undefined && Date.now() < deadline) {
      const reader = await openEvents(`${hub.url}${MERCURE}?${topicQuery}`);
      if (reader.res.statusCode === 200) again = reader;
      else {
        reader.res.destroy();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    assert.ok(again !== undefined, 'a slot freed within 5 s');
    for (const reader of [readers[1]!, again]) reader.res.destroy();
  });

  test('idle Mercure streams get keep-alive comments; updates arrive between them', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, keepAlive: 100 });
    const reader = await openEvents(`${hub.url}${MERCURE}?${topicQuery}`);
    await reader.until(() => reader.comments.length >= 2, 3000, 'two keep-alive comments');
    const published = await publish(hub.url, { topic: 'https://example.com/books/1', data: 'between comments' });
    assert.equal(published.status, 200, published.body);
    await reader.until(() => reader.events.length === 1);
    assert.equal(reader.events[0]!.id, published.body);
    assert.equal(reader.events[0]!.data, 'between comments');
    reader.res.destroy();
  });

  test('at shutdown, Mercure subscribers are told when to come back and their streams end; publications get 503', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, shutdownRetry: 1500 });
    const reader = await openEvents(`${hub.url}${MERCURE}?${topicQuery}`);
    const closed = hub.close();
    await reader.until(() => reader.ended, 5000, 'the stream to end');
    assert.ok(reader.retry !== undefined && reader.retry >= 1500 && reader.retry <= 3000, `retry ${reader.retry}`);
    await closed;
  });

  test('--max-lifetime ends a Mercure stream whatever its token says', async () => {
    const hub = await startHub({ maxLifetime: 1000 });
    const started = Date.now();
    const reader = await openEvents(`${hub.url}${MERCURE}?${topicQuery}`);
    assert.equal(reader.res.statusCode, 200);
    await reader.until(() => reader.ended, 4000, 'the stream to end');
    const lasted = Date.now() - started;
    assert.ok(lasted >= 900 && lasted <= 3000, `lasted ${lasted} ms`);
  });

  test('Mercure requests are counted under their own route in /metrics', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    assert.equal((await publish(hub.url, { topic: 'https://example.com/books/1', data: 'x' })).status, 200);
    assert.equal((await publish(hub.url, { data: 'no topic' })).status, 400);
    const metrics = (await send(`${hub.url}/metrics`)).body;
    const sample = (status: number): number | undefined =>
      metric(metrics, `serve_sse_http_responses_total{endpoint="${MERCURE}",code="${status}"}`);
    assert.equal(sample(200), 1, metrics.split('\n').filter((line) => line.includes('mercure')).join('\n'));
    assert.equal(sample(400), 1);
  });
});
