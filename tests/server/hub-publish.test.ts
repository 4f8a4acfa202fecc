/** `POST /publish` of the hub server, through real HTTP: bodies, tokens, statuses, limits, CORS. */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, describe, test } from 'node:test';
import { openEvents } from '../helpers.js';
import {
  closeAll,
  PUBLISHER_KEY,
  publishJson,
  publisherToken,
  send,
  sign,
  startHub,
  SUBSCRIBER_KEY,
  unsecuredToken,
  type Answer,
} from './hub-helpers.js';

after(closeAll);

describe('publishing', () => {
  test('JSON with one topic answers 200 with the id as text, and subscribers get the event under that id', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const reader = await openEvents(`${hub.url}/events?topic=news`);
    const token = await publisherToken(['news']);
    const answer = await publishJson(hub, token, { topic: 'news', event: 'headline', data: 'Hello\nworld' });
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers['content-type']), /^text\/plain/);
    assert.match(answer.body, /^\S+$/, 'the body is the id alone');
    await reader.until(() => reader.events.length === 1);
    assert.deepEqual(reader.events[0], { id: answer.body, event: 'headline', data: 'Hello\nworld' });
    reader.res.destroy();
  });

  test('data of any JSON type: strings as they are, anything else JSON-encoded; no event type means message', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const reader = await openEvents(`${hub.url}/events?topic=t`);
    const token = await publisherToken(['t']);
    const values: unknown[] = ['plain', { a: [1, 2] }, [true, null], 42, null, false, ''];
    for (const data of values) assert.equal((await publishJson(hub, token, { topic: 't', data })).status, 200);
    await reader.until(() => reader.events.length === values.length);
    assert.deepEqual(
      reader.events.map((event) => event.data),
      values.map((value) => (typeof value === 'string' ? value : JSON.stringify(value))),
    );
    assert.ok(reader.events.every((event) => event.event === undefined), 'no event field: a "message"');
    reader.res.destroy();
  });

  test('"topics" reaches every listed topic, and a subscriber of several gets the event once', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const both = await openEvents(`${hub.url}/events?topic=a&topic=b`);
    const onlyB = await openEvents(`${hub.url}/events?topic=b`);
    const token = await publisherToken(['a', 'b']);
    const answer = await publishJson(hub, token, { topics: ['a', 'b'], data: 'x' });
    assert.equal(answer.status, 200);
    await onlyB.until(() => onlyB.events.length === 1);
    await both.until(() => both.events.length === 1);
    assert.equal(both.events[0]?.id, answer.body);
    // Give a duplicate time to show up.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(both.events.length, 1);
    both.res.destroy();
    onlyB.res.destroy();
  });

  test('form fields: topic may repeat, data is text', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const a = await openEvents(`${hub.url}/events?topic=a`);
    const b = await openEvents(`${hub.url}/events?topic=b`);
    const token = await publisherToken(['*']);
    const body = new URLSearchParams([['topic', 'a'], ['topic', 'b'], ['event', 'note'], ['data', 'line 1\r\nline 2 & more']]).toString();
    const answer = await send(`${hub.url}/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    assert.equal(answer.status, 200, answer.body);
    for (const reader of [a, b]) {
      await reader.until(() => reader.events.length === 1);
      assert.deepEqual(reader.events[0], { id: answer.body, event: 'note', data: 'line 1\nline 2 & more' });
      reader.res.destroy();
    }
  });

  test('JSON sent as a form (what curl -d does) or with no Content-Type gets a hint about the header, and nothing is published', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const reader = await openEvents(`${hub.url}/events?topic=news`);
    const authorization = `Bearer ${await publisherToken(['news'])}`;
    const body = JSON.stringify({ topic: 'news', data: 'x' });
    const asForm = await send(`${hub.url}/publish`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body });
    assert.equal(asForm.status, 400);
    assert.match(asForm.body, /looks like JSON.*send it with Content-Type: application\/json/);
    const untyped = await send(`${hub.url}/publish`, { method: 'POST', headers: { authorization }, body });
    assert.equal(untyped.status, 415);
    assert.match(untyped.body, /no Content-Type: send JSON with Content-Type: application\/json/);
    const published = await publishJson(hub, authorization.slice('Bearer '.length), { topic: 'news', data: 'after' });
    await reader.until(() => reader.events.length === 1);
    assert.deepEqual(reader.events.map((event) => event.data), ['after'], 'the refused bodies published nothing');
    assert.equal(reader.events[0]!.id, published.body);
    reader.res.destroy();
  });

  test('each publish gets a larger id, in order', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const reader = await openEvents(`${hub.url}/events?topic=t`);
    const token = await publisherToken(['t']);
    const ids: string[] = [];
    for (let n = 0; n < 20; n++) ids.push((await publishJson(hub, token, { topic: 't', data: String(n) })).body);
    assert.equal(new Set(ids).size, 20);
    await reader.until(() => reader.events.length === 20);
    assert.deepEqual(reader.events.map((event) => event.id), ids);
    assert.deepEqual(reader.events.map((event) => event.data), ids.map((_, n) => String(n)));
    reader.res.destroy();
  });
});

describe('publisher tokens', () => {
  const body = { topic: 'a', data: 'x' };

  test('without --publisher-key, publishing is refused even with a token', async () => {
    const hub = await startHub();
    const answer = await publishJson(hub, await publisherToken(['*']), body);
    assert.equal(answer.status, 403);
    assert.match(answer.body, /--publisher-key/);
    assert.equal(hub.hub.stats().published, 0);
  });

  test('401 with a clear body and a Bearer challenge: no token, wrong key, expired, alg none, HS512, garbage', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const past = Math.floor(Date.now() / 1000) - 10;
    const cases: Array<[string, string | undefined, RegExp]> = [
      ['no token', undefined, /token is required/],
      ['wrong key', await publisherToken(['*'], { key: SUBSCRIBER_KEY }), /signature/],
      ['expired', await publisherToken(['*'], { exp: past }), /expired/],
      ['alg none', unsecuredToken({ sse: { publish: ['*'] } }), /invalid token/],
      ['HS512 with the right key', await publisherToken(['*'], { alg: 'HS512' }), /algorithm/],
      ['not a JWT', 'not.a.jwt', /invalid token/],
    ];
    for (const [name, token, reason] of cases) {
      const answer = await publishJson(hub, token, body);
      assert.equal(answer.status, 401, `${name}: ${answer.body}`);
      assert.match(answer.body, reason, name);
      assert.match(String(answer.headers['www-authenticate']), /^Bearer realm="serve-sse"/, name);
    }
    assert.equal(hub.hub.stats().published, 0, 'nothing was published');
  });

  test('a token in the sse_token cookie does not authorise publishing (only subscribing)', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const token = await publisherToken(['*']);
    const answer = await send(`${hub.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: `sse_token=${token}` },
      body: JSON.stringify(body),
    });
    assert.equal(answer.status, 401);
  });

  test('403 for a topic the token does not allow; nothing reaches that topic, even when others are allowed', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const secret = await openEvents(`${hub.url}/events?topic=secret`);
    const cases: Array<[string, string, unknown]> = [
      ['other topic', await publisherToken(['public']), { topic: 'secret', data: 'x' }],
      ['one of two', await publisherToken(['public']), { topics: ['public', 'secret'], data: 'x' }],
      ['no sse claim', await sign({ sub: 'backend' }), { topic: 'secret', data: 'x' }],
      ['subscribe claim only', await sign({ sse: { subscribe: ['*'] } }), { topic: 'secret', data: 'x' }],
      ['claim not an array', await sign({ sse: { publish: 'secret' } }), { topic: 'secret', data: 'x' }],
    ];
    for (const [name, token, request] of cases) {
      const answer = await publishJson(hub, token, request);
      assert.equal(answer.status, 403, `${name}: ${answer.body}`);
      assert.match(answer.body, /secret|sse\.publish/, name);
    }
    const allowed = await publishJson(hub, await publisherToken(['public']), { topic: 'public', data: 'ok' });
    assert.equal(allowed.status, 200);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(secret.events, []);
    assert.equal(hub.hub.stats().published, 1);
    secret.res.destroy();
  });

  test('a token that worked stops working at its expiry', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    // At least a second of validity, on a busy machine too.
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await publisherToken(['a'], { exp });
    assert.equal((await publishJson(hub, token, body)).status, 200);
    assert.equal((await publishJson(hub, token, body)).status, 200, 'again, while valid');
    await new Promise((resolve) => setTimeout(resolve, exp * 1000 - Date.now() + 10));
    const late = await publishJson(hub, token, body);
    assert.equal(late.status, 401);
    assert.match(late.body, /expired/);
  });

  test('"*" allows every topic', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const answer = await publishJson(hub, await publisherToken(['*']), { topics: ['x', 'y', 'z'], data: 1 });
    assert.equal(answer.status, 200);
  });
});

describe('malformed publications', () => {
  async function expect400(hub: Awaited<ReturnType<typeof startHub>>, body: string, contentType: string, reason: RegExp): Promise<void> {
    const answer = await send(`${hub.url}/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await publisherToken(['*'])}`, 'content-type': contentType },
      body,
    });
    assert.equal(answer.status, 400, `${body}: ${answer.body}`);
    assert.match(answer.body, reason, body);
  }

  test('400 names what is wrong with a JSON body', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const json = 'application/json';
    await expect400(hub, '{"topic": "a", "data": ', json, /not valid JSON/);
    await expect400(hub, '["a"]', json, /must be an object/);
    await expect400(hub, '{"topic": "a"}', json, /"data" is missing/);
    await expect400(hub, '{"data": "x"}', json, /no topic/);
    await expect400(hub, '{"topic": 5, "data": "x"}', json, /"topic" must be a string/);
    await expect400(hub, '{"topics": "a", "data": "x"}', json, /"topics" must be an array/);
    await expect400(hub, '{"topics": [], "data": "x"}', json, /no topic/);
    await expect400(hub, '{"topic": "a", "event": 3, "data": "x"}', json, /"event" must be a string/);
    await expect400(hub, '{"topic": "a", "event": "a\\nb", "data": "x"}', json, /"event"/);
    await expect400(hub, '{"topic": "a", "id": "1", "data": "x"}', json, /the hub assigns/);
    await expect400(hub, '{"topic": "a", "retry": 5, "data": "x"}', json, /unknown field "retry"/);
    assert.equal(hub.hub.stats().published, 0);
  });

  test('400 names a topic that breaks the rules: empty, too long, whitespace, control characters, "*", too many', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const json = 'application/json';
    for (const topic of ['', 'x'.repeat(257), 'two words', 'tab\there', 'nul\u0000', 'del\u007f', 'nbsp\u00a0', '*']) {
      await expect400(hub, JSON.stringify({ topic, data: 'x' }), json, /invalid topic/);
    }
    await expect400(hub, JSON.stringify({ topics: Array.from({ length: 101 }, (_, n) => `t${n}`), data: 'x' }), json, /at most 100/);
    // The limits themselves are fine.
    const ok = await publishJson(hub, await publisherToken(['*']), { topics: ['x'.repeat(256), 'ünïcødé/path:1', ...Array.from({ length: 98 }, (_, n) => `t${n}`)], data: 'x' });
    assert.equal(ok.status, 200, ok.body);
  });

  test('400 for malformed form bodies', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const form = 'application/x-www-form-urlencoded';
    await expect400(hub, 'topic=a', form, /"data" is missing/);
    await expect400(hub, 'data=x', form, /no topic/);
    await expect400(hub, 'topic=a&data=x&data=y', form, /more than once/);
    await expect400(hub, 'topic=a&data=x&colour=red', form, /unknown field "colour"/);
    await expect400(hub, 'topic=a%20b&data=x', form, /invalid topic "a b"/);
  });

  test('400 for a body that is not UTF-8', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const answer = await send(`${hub.url}/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await publisherToken(['*'])}`, 'content-type': 'application/json' },
      body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]),
    });
    assert.equal(answer.status, 400);
    assert.match(answer.body, /UTF-8/);
  });

  test('415 for other content types, naming what is accepted', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const token = await publisherToken(['*']);
    for (const type of ['text/plain', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', undefined]) {
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (type !== undefined) headers['content-type'] = type;
      const answer = await send(`${hub.url}/publish`, { method: 'POST', headers, body: '{"topic":"a","data":"x"}' });
      assert.equal(answer.status, 415, `${type}: ${answer.body}`);
      assert.match(answer.body, /application\/json|UTF-8/);
    }
    const ok = await send(`${hub.url}/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'Application/JSON; charset=UTF-8' },
      body: '{"topic":"a","data":"x"}',
    });
    assert.equal(ok.status, 200, 'media types are case-insensitive');
  });

  test('the token is checked before the body: 401, not 400 or 415, without one', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const answer = await send(`${hub.url}/publish`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'junk' });
    assert.equal(answer.status, 401);
  });
});

describe('body size limit', () => {
  test('413 over --max-body, announced by Content-Length; at the limit it is accepted', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, maxBody: 200 });
    const token = await publisherToken(['*']);
    const body = (size: number): string => {
      const base = JSON.stringify({ topic: 'a', data: '' });
      return JSON.stringify({ topic: 'a', data: 'x'.repeat(size - base.length) });
    };
    assert.equal(body(200).length, 200);
    const ok = await send(`${hub.url}/publish`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body(200) });
    assert.equal(ok.status, 200, ok.body);
    const over = await send(`${hub.url}/publish`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body(201) });
    assert.equal(over.status, 413);
    assert.match(over.body, /limit of 200 bytes/);
  });

  test('413 for a chunked body that grows past the limit, without reading it all', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, maxBody: 1024 });
    const token = await publisherToken(['*']);
    const answer = await new Promise<Answer>((resolve, reject) => {
      const req = httpRequest(`${hub.url}/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        agent: false,
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      });
      req.on('error', reject);
      // No Content-Length: chunked. 4 KiB in 512-byte chunks, and the request never ends.
      req.write('{"topic":"a","data":"');
      for (let n = 0; n < 8; n++) req.write('x'.repeat(512));
    });
    assert.equal(answer.status, 413);
    assert.equal(answer.headers.connection, 'close');
    assert.equal(hub.hub.stats().published, 0);
  });
});

describe('CORS on /publish', () => {
  test('an allowed origin gets its preflight (POST, Authorization) and the answer headers', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, cors: ['https://app.example'] });
    const preflight = await send(`${hub.url}/publish`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);
    assert.match(String(preflight.headers['access-control-allow-headers']), /authorization/i);

    const answer = await send(`${hub.url}/publish`, {
      method: 'POST',
      headers: { origin: 'https://app.example', authorization: `Bearer ${await publisherToken(['a'])}`, 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'a', data: 'x' }),
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['access-control-allow-origin'], 'https://app.example');
    // Refusals carry them too, so that the page can read why.
    const refused = await send(`${hub.url}/publish`, { method: 'POST', headers: { origin: 'https://app.example', 'content-type': 'application/json' }, body: '{}' });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers['access-control-allow-origin'], 'https://app.example');
  });

  test('another origin gets 403 and no CORS headers, and publishes nothing', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, cors: ['https://app.example'] });
    const preflight = await send(`${hub.url}/publish`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(preflight.status, 403);
    assert.equal(preflight.headers['access-control-allow-origin'], undefined);
    const answer = await send(`${hub.url}/publish`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', authorization: `Bearer ${await publisherToken(['a'])}`, 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'a', data: 'x' }),
    });
    assert.equal(answer.status, 403);
    assert.equal(hub.hub.stats().published, 0);
  });

  test('without --cors, no CORS headers are sent to a cross-origin request', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const preflight = await send(`${hub.url}/publish`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(preflight.headers['access-control-allow-origin'], undefined);
  });
});
