/**
 * `mercureHandler` through a real server and clients, written from both drafts: subscribing by
 * selector, publishing form fields as Symfony's client sends them, ids chosen by publishers,
 * private updates, reconciliation headers, and the answers to what is wrong.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, describe, test } from 'node:test';
import { SignJWT, type JWTPayload } from 'jose';
import { createHub, type Hub } from '../../../src/index.js';
import { mercureHandler, type MercureOptions } from '../../../src/protocols/mercure/index.js';
import { get, listen, openEvents, recordingLogger, text, waitFor, type EventReader, type Running } from '../../helpers.js';

const PUBLISHER_KEY = 'mercure-publisher-key-for-tests-0123456789';
const SUBSCRIBER_KEY = 'mercure-subscriber-key-for-tests-0123456789';
const AUDIENCE = 'https://hub.example.com/.well-known/mercure';

const servers: Running[] = [];
after(() => Promise.all(servers.map((server) => server.close())));

async function sign(payload: JWTPayload, key: string, typ?: string): Promise<string> {
  const jwt = new SignJWT(payload).setProtectedHeader({ alg: 'HS256', ...(typ === undefined ? {} : { typ }) }).setIssuedAt().setExpirationTime('1h');
  return jwt.sign(new TextEncoder().encode(key));
}

const publisher07 = (topics: string[] = ['*']): Promise<string> => sign({ mercure: { publish: topics } }, PUBLISHER_KEY);
const subscriber07 = (topics: string[], payload?: unknown): Promise<string> => sign({ mercure: { subscribe: topics, payload } }, SUBSCRIBER_KEY);
const publisher08 = (): Promise<string> =>
  sign({ aud: AUDIENCE, authorization_details: [{ type: 'mercure', actions: ['publish'], topics: [{ match: '*' }] }] }, PUBLISHER_KEY, 'at+jwt');

interface Served {
  hub: Hub;
  url: string;
  endpoint: string;
}

async function serve(options: MercureOptions = {}, history?: number): Promise<Served> {
  const hub = createHub({ logger: recordingLogger().logger, history });
  const handler = mercureHandler(hub, { publisherKey: PUBLISHER_KEY, jwtAudience: AUDIENCE, logger: recordingLogger().logger, keepAlive: 60_000, ...options });
  const running = await listen((req, res) => (req.url?.startsWith('/.well-known/mercure') ? handler(req, res) : res.writeHead(404).end()));
  servers.push(running);
  return { hub, url: running.url, endpoint: `${running.url}/.well-known/mercure` };
}

/** A publication as Symfony's Mercure client sends it: form fields, a bearer token. */
async function publish(
  served: Served,
  fields: Array<[string, string]> | string | Blob,
  token: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; challenge: string | null }> {
  const response = await fetch(served.endpoint, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    // A string or bytes go as they are: bodies URLSearchParams could not make.
    body: Array.isArray(fields) ? new URLSearchParams(fields).toString() : fields,
  });
  return { status: response.status, body: await response.text(), challenge: response.headers.get('www-authenticate') };
}

/** A POST through node:http, with exactly these headers. */
function postRaw(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers, agent: false }, (res) => {
      let received = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: received }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A draft-08 subscriber token: subscribe details (Exact by default), a subject, a lifetime. */
function subscriber08(topics: Array<{ match: string; matchType?: string }>, { sub, payload, exp }: { sub?: string; payload?: unknown; exp?: number } = {}): Promise<string> {
  const jwt = new SignJWT({ sub, aud: AUDIENCE, authorization_details: [{ type: 'mercure', actions: ['subscribe'], topics, payload }] })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
    .setIssuedAt()
    .setExpirationTime(exp ?? '1h');
  return jwt.sign(new TextEncoder().encode(SUBSCRIBER_KEY));
}

/** The subscriptions API at `path` (after /subscriptions), read with `token`. */
async function api(served: Served, path: string, token: string): Promise<{ status: number; body: Record<string, unknown> & { subscriptions?: Array<Record<string, unknown>> } }> {
  const response = await fetch(`${served.endpoint}/subscriptions${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, body: response.status === 200 ? ((await response.json()) as Record<string, unknown>) : {} };
}

async function subscribe(served: Served, query: string, headers: Record<string, string> = {}): Promise<EventReader> {
  const before = served.hub.stats().connections;
  const reader = await openEvents(`${served.endpoint}?${query}`, headers);
  assert.equal(reader.res.statusCode, 200, `subscribed with ${query}`);
  await waitFor(() => served.hub.stats().connections > before, 5000, 'the subscription');
  return reader;
}

describe('draft-07', () => {
  test('subscribe with topic selectors (exact and URI template), publish form fields, get the id back', async () => {
    const served = await serve();
    const reader = await subscribe(served, `topic=${encodeURIComponent('https://example.com/books/{id}')}&topic=bar`);
    const token = await publisher07();
    const one = await publish(served, [['topic', 'https://example.com/books/1'], ['data', '{"title":"one"}']], token);
    assert.equal(one.status, 200);
    assert.match(one.body, /^urn:uuid:[0-9a-f-]{36}$/, 'a generated id is an IRI');
    const two = await publish(served, [['topic', 'bar'], ['data', 'two\nlines'], ['id', 'https://example.com/rev/2'], ['type', 'change'], ['retry', '1234']], token);
    assert.equal(two.body, 'https://example.com/rev/2', 'the publisher\'s id, as given');
    await publish(served, [['topic', 'https://example.com/films/1'], ['data', 'not for us']], token);
    await reader.until(() => reader.events.length === 2);
    assert.deepEqual(reader.events.map((event) => [event.id, event.event, event.data]), [
      [one.body, undefined, '{"title":"one"}'],
      ['https://example.com/rev/2', 'change', 'two\nlines'],
    ]);
    assert.equal(reader.retry, 1234);
    reader.res.destroy();
  });

  test('alternate topics: an update reaches subscribers of any of its topics, once', async () => {
    const served = await serve();
    const reader = await subscribe(served, 'topic=a&topic=b');
    await publish(served, [['topic', 'a'], ['topic', 'b'], ['data', 'once']], await publisher07());
    await reader.until(() => reader.events.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(reader.events.length, 1);
    reader.res.destroy();
  });

  test('private updates only to subscribers whose token allows one of their topics (cookie); replays too', async () => {
    const served = await serve({ subscriberKey: SUBSCRIBER_KEY, anonymous: true });
    const allowed = await subscribe(served, 'topic=https://example.com/books/{id}', { cookie: `mercureAuthorization=${await subscriber07(['https://example.com/books/1'])}` });
    const anonymous = await subscribe(served, 'topic=https://example.com/books/{id}');
    const token = await publisher07();
    const secret = await publish(served, [['topic', 'https://example.com/books/1'], ['data', 'secret'], ['private', 'on']], token);
    const other = await publish(served, [['topic', 'https://example.com/books/2'], ['data', 'private, not allowed'], ['private', '']], token);
    const open = await publish(served, [['topic', 'https://example.com/books/3'], ['data', 'public']], token);
    await allowed.until(() => allowed.events.length === 2);
    await anonymous.until(() => anonymous.events.length === 1);
    assert.deepEqual(allowed.events.map((event) => event.id), [secret.body, open.body]);
    assert.deepEqual(anonymous.events.map((event) => event.id), [open.body]);
    assert.ok(other.status === 200);
    // Replay, as another anonymous client: the private update is not sent, and not named.
    const replay = await openEvents(`${served.endpoint}?topic=${encodeURIComponent('https://example.com/books/{id}')}&lastEventID=${encodeURIComponent(secret.body)}`);
    await replay.until(() => replay.events.length === 1);
    assert.deepEqual(replay.events.map((event) => event.id), [open.body]);
    for (const reader of [allowed, anonymous, replay]) reader.res.destroy();
  });

  test('Last-Event-ID response header: the id before the first event sent, or earliest', async () => {
    const served = await serve();
    const token = await publisher07();
    const first = await publish(served, [['topic', 't'], ['data', '1']], token);
    await publish(served, [['topic', 't'], ['data', '2']], token);
    const resumed = await openEvents(`${served.endpoint}?topic=t`, { 'last-event-id': first.body });
    assert.equal(resumed.res.headers['last-event-id'], first.body);
    await resumed.until(() => resumed.events.length === 1);
    const unknown = await openEvents(`${served.endpoint}?topic=t&lastEventID=nope`);
    assert.equal(unknown.res.headers['last-event-id'], 'earliest');
    const everything = await openEvents(`${served.endpoint}?topic=t&lastEventID=earliest`);
    assert.equal(everything.res.headers['last-event-id'], 'earliest');
    await everything.until(() => everything.events.length === 2);
    assert.deepEqual(everything.events.map((event) => event.data), ['1', '2']);
    for (const reader of [resumed, unknown, everything]) reader.res.destroy();
  });
});

describe('both dialects', () => {
  test('the Last-Event-ID header wins over the query parameter', async () => {
    const served = await serve();
    const token = await publisher07();
    const first = await publish(served, [['topic', 't'], ['data', '1']], token);
    const second = await publish(served, [['topic', 't'], ['data', '2']], token);
    await publish(served, [['topic', 't'], ['data', '3']], token);
    const reader = await openEvents(`${served.endpoint}?topic=t&lastEventID=${encodeURIComponent(first.body)}`, { 'last-event-id': second.body });
    await reader.until(() => reader.events.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(reader.events.map((event) => event.data), ['3']);
    reader.res.destroy();
  });

  test('a private update reaches a subscriber allowed by one of its alternate topics', async () => {
    const served = await serve({ subscriberKey: SUBSCRIBER_KEY, anonymous: true });
    const allowed = await subscribe(served, `topic=${encodeURIComponent('https://example.com/books/{id}')}`, {
      authorization: `Bearer ${await subscriber07(['https://example.com/users/foo/{?topic}'])}`,
    });
    const alternate = `https://example.com/users/foo/?topic=${encodeURIComponent('https://example.com/books/1')}`;
    const published = await publish(served, [['topic', 'https://example.com/books/1'], ['topic', alternate], ['data', 'yours'], ['private', 'on']], await publisher07());
    await allowed.until(() => allowed.events.length === 1);
    assert.equal(allowed.events[0]!.id, published.body);
    allowed.res.destroy();
  });

  test("the stream ends at the token's exp; maxLifetime ends it sooner", async () => {
    const served = await serve({ subscriberKey: SUBSCRIBER_KEY });
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({ mercure: { subscribe: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(SUBSCRIBER_KEY));
    const started = Date.now();
    const reader = await subscribe(served, 'topic=a', { authorization: `Bearer ${token}` });
    await reader.until(() => reader.ended, 5000, 'the stream to end at exp');
    assert.ok(Date.now() <= exp * 1000 + 1500, `ended ${Date.now() - exp * 1000} ms after exp`);
    assert.ok(Date.now() - started >= 500);
    assert.ok(reader.comments.includes('token expired'));
    const limited = await serve({ maxLifetime: 1000 });
    const short = await subscribe(limited, 'topic=a');
    await short.until(() => short.ended, 4000, 'the stream to end at maxLifetime');
  });

  test('publication limits answer 413', async () => {
    const served = await serve();
    const answer = await publish(served, [['topic', 'x'.repeat(3000)]], await publisher07());
    assert.equal(answer.status, 413);
    const body = await publish(served, [['topic', 'a'], ['data', 'x'.repeat(2 * 1024 * 1024)]], await publisher07());
    assert.equal(body.status, 413);
    for (const fields of [
      [['topic', 'a'], ['id', 'x'.repeat(3000)]],
      [['topic', 'a'], ['type', 'x'.repeat(3000)]],
      Array.from({ length: 101 }, (_, n): [string, string] => ['topic', `t${n}`]),
    ]) {
      assert.equal((await publish(served, fields as Array<[string, string]>, await publisher07())).status, 413, JSON.stringify(fields).slice(0, 60));
    }
    const retry = await publish(served, [['topic', 'a'], ['retry', '1'.repeat(16)]], await publisher07());
    assert.equal(retry.status, 413, 'digits, but more than a field holds');
    assert.match(retry.body, /at most 15 digits/);
    assert.equal(served.hub.stats().published, 0);
  });
});

describe('draft-08', () => {
  test('match and match_urlpattern, at+jwt publisher with its audience, Mercure-Last-Event-ID', async () => {
    const served = await serve();
    const reader = await subscribe(served, `match=${encodeURIComponent('https://example.com/foo')}&match_urlpattern=${encodeURIComponent('https://example.com/books/:id')}`);
    const token = await publisher08();
    const foo = await publish(served, [['topic', 'https://example.com/foo'], ['data', 'foo']], token);
    const book = await publish(served, [['topic', 'https://example.com/books/7'], ['data', 'book']], token);
    await publish(served, [['topic', 'https://example.com/books/7/pages'], ['data', 'not matched']], token);
    await reader.until(() => reader.events.length === 2);
    assert.deepEqual(reader.events.map((event) => event.id), [foo.body, book.body]);
    const resumed = await openEvents(`${served.endpoint}?match=${encodeURIComponent('https://example.com/foo')}&last_event_id=${encodeURIComponent(foo.body)}`);
    assert.equal(resumed.res.headers['mercure-last-event-id'], foo.body);
    assert.equal(resumed.res.headers['last-event-id'], foo.body, 'current draft-08 names it Last-Event-ID');
    reader.res.destroy();
    resumed.res.destroy();
  });

  test('an at+jwt token for another audience is refused as an invalid token', async () => {
    const served = await serve();
    const wrong = await sign({ aud: 'https://other.example/', authorization_details: [{ type: 'mercure', actions: ['publish'], topics: [{ match: '*' }] }] }, PUBLISHER_KEY, 'at+jwt');
    const answer = await publish(served, [['topic', 'x'], ['data', 'y']], wrong);
    assert.equal(answer.status, 401);
  });
});

describe('refusals', () => {
  test('bad subscriptions: 400 with a reason', async () => {
    const served = await serve();
    for (const [query, reason] of [
      ['', /no topic selector/],
      ['matchRegexp=a', /unknown topic matcher parameter/],
      ['topic=a&match=b', /either topic/],
      ['match=%FF', /not valid UTF-8/],
      ['match=a%01b', /control character/],
      [Array.from({ length: 101 }, (_, n) => `match=t${n}`).join('&'), /at most 100/],
      [`match=${'x'.repeat(2049)}`, /at most 2048/],
      [`topic=${'x'.repeat(2049)}`, /at most 2048/],
      // Parameter names are case-sensitive, and the whole match… prefix is reserved.
      ['MATCH=a', /unknown topic matcher parameter/],
      ['Match=a', /unknown topic matcher parameter/],
      ['matchexact=a', /unknown topic matcher parameter/],
      ['matchurlpattern=a', /unknown topic matcher parameter/],
      ['MatchURLPattern=a', /unknown topic matcher parameter/],
      ['match_URLPattern=a', /unknown topic matcher parameter/],
    ] as const) {
      const res = await get(`${served.endpoint}?${query}`);
      assert.equal(res.statusCode, 400, query.slice(0, 40));
      assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_request"', query.slice(0, 40));
      assert.match(await text(res), reason);
    }
    const accepted: EventReader[] = [];
    for (const query of ['matchExact=a', `matchURLPattern=${encodeURIComponent('https://example.com/:id')}`, `match_urlpattern=${encodeURIComponent('https://example.com/:id')}`]) {
      accepted.push(await subscribe(served, query));
    }
    for (const reader of accepted) reader.res.destroy();
  });

  test('bad publications: 400, 401 and 403 with their RFC 6750 challenge, and nothing is published', async () => {
    const served = await serve();
    const token = await publisher07(['allowed']);
    const cases: Array<[Array<[string, string]>, number, RegExp]> = [
      [[['data', 'no topic']], 400, /needs a topic/],
      [[['topic', '*']], 400, /not a topic/],
      [[['topic', 'allowed'], ['id', '#mine']], 400, /must not start with "#"/],
      [[['topic', 'allowed'], ['id', 'earliest']], 400, /reserved/],
      [[['topic', 'allowed'], ['retry', '10s']], 400, /ASCII digits/],
      [[['topic', 'allowed'], ['type', 'mercure']], 400, /reserved/],
      [[['topic', 'a\u007fb']], 400, /control character/],
      [[['topic', 'a\u0085b']], 400, /control character/],
      [[['topic', 'allowed'], ['id', 'a\nb']], 400, /CR, LF or NUL/],
      [[['topic', 'allowed'], ['id', 'a\rb']], 400, /CR, LF or NUL/],
      [[['topic', 'allowed'], ['id', 'a\u0000b']], 400, /CR, LF or NUL/],
      [[['topic', 'allowed'], ['type', 'a\nb']], 400, /CR or LF/],
      [[['topic', 'allowed'], ['type', 'a\rb']], 400, /CR or LF/],
      [[['topic', '/.well-known/mercure/subscriptions/x/y']], 403, /namespace/],
      [[['topic', 'https://evil.example/./.well-known/mercure/subscriptions/x']], 403, /namespace/],
      [[['topic', 'allowed'], ['topic', 'forbidden']], 403, /does not allow publishing/],
    ];
    for (const [fields, status, reason] of cases) {
      const answer = await publish(served, fields, token);
      assert.equal(answer.status, status, JSON.stringify(fields));
      assert.match(answer.body, reason);
      if (status === 400) assert.equal(answer.challenge, 'Bearer error="invalid_request"', JSON.stringify(fields));
    }
    const scope = await publish(served, [['topic', 'allowed'], ['topic', 'forbidden']], token);
    assert.equal(scope.challenge, 'Bearer error="insufficient_scope"');
    const invalid = await publish(served, [['topic', 'allowed']], 'not.a.token');
    assert.equal(invalid.status, 401);
    assert.equal(invalid.challenge, 'Bearer error="invalid_token"');
    // Bodies a form encoder would not make: a %-escape that is no UTF-8, and raw bytes that are none.
    for (const body of ['topic=allowed&data=%FF', new Blob([new TextEncoder().encode('topic=allowed&data='), new Uint8Array([0xff])])]) {
      const answer = await publish(served, body, token);
      assert.equal(answer.status, 400, String(body));
      assert.match(answer.body, /not valid UTF-8/);
    }
    const json = await publish(served, '{}', token, { 'content-type': 'application/json' });
    assert.equal(json.status, 400, 'a malformed request (draft-08: 400 invalid_request)');
    assert.match(json.body, /application\/x-www-form-urlencoded/);
    assert.equal(json.challenge, 'Bearer error="invalid_request"');
    assert.equal(served.hub.stats().published, 0);
  });

  test('without a publisher key, publishing is refused', async () => {
    const served = await serve({ publisherKey: undefined });
    const answer = await publish(served, [['topic', 'a']], await publisher07());
    assert.equal(answer.status, 403);
  });

  test('a cookie-authorised publication from another origin is refused (CSRF)', async () => {
    const served = await serve();
    const token = await publisher07();
    const fields = new URLSearchParams([['topic', 'a'], ['data', 'x']]).toString();
    const forged = await fetch(served.endpoint, { method: 'POST', headers: { cookie: `mercureAuthorization=${token}`, 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' }, body: fields });
    assert.equal(forged.status, 403);
    const host = new URL(served.url).host;
    const same = await fetch(served.endpoint, { method: 'POST', headers: { cookie: `mercureAuthorization=${token}`, 'content-type': 'application/x-www-form-urlencoded', origin: `http://${host}` }, body: fields });
    assert.equal(same.status, 200);
    // Without Origin, the Referer says where it came from; with neither, it is refused.
    // node:http sends only the headers given: no Origin unless we set one.
    const cookie = { cookie: `mercureAuthorization=${token}`, 'content-type': 'application/x-www-form-urlencoded' };
    assert.equal((await postRaw(served.endpoint, fields, { ...cookie, referer: `http://${host}/page` })).status, 200);
    assert.equal((await postRaw(served.endpoint, fields, { ...cookie, referer: 'https://evil.example/page' })).status, 403);
    assert.equal((await postRaw(served.endpoint, fields, cookie)).status, 403, 'neither Origin nor Referer: refused');
  });

  test('with a subscriber key and no anonymous, a tokenless subscriber gets 401', async () => {
    const served = await serve({ subscriberKey: SUBSCRIBER_KEY });
    const res = await get(`${served.endpoint}?topic=a`);
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers['www-authenticate'], 'Bearer');
  });
});

describe('active subscriptions', () => {
  test('announcements are private; the API answers per selector, per subscription (404 when none), and 403 outside the token', async () => {
    const served = await serve({ subscriberKey: SUBSCRIBER_KEY, anonymous: true });
    const watchAll = await subscriber07(['*']);
    const anonymousWatcher = await subscribe(served, `topic=${encodeURIComponent('/.well-known/mercure/subscriptions/{topic}/{subscriber}')}`);
    const subscriber = await subscribe(served, `match=${encodeURIComponent('https://example.com/a')}`, {
      authorization: `Bearer ${await sign({ sub: 'urn:user:7', aud: AUDIENCE, authorization_details: [{ type: 'mercure', actions: ['subscribe'], topics: [{ match: 'https://example.com/a' }], payload: { role: 'admin' } }] }, SUBSCRIBER_KEY, 'at+jwt')}`,
    });
    const perSelector = await fetch(`${served.endpoint}/subscriptions/Exact/${encodeURIComponent('https://example.com/a')}`, { headers: { authorization: `Bearer ${watchAll}` } });
    assert.equal(perSelector.status, 200);
    const collection = (await perSelector.json()) as { subscriptions: Array<Record<string, unknown>>; lastEventID: string; id: string };
    assert.equal(collection.subscriptions.length, 1);
    const doc = collection.subscriptions[0]!;
    assert.deepEqual([doc.match, doc.matchType, doc.subscriber, doc.payload], ['https://example.com/a', 'Exact', 'urn:user:7', { role: 'admin' }]);
    assert.equal(doc.id, `/.well-known/mercure/subscriptions/Exact/${encodeURIComponent('https://example.com/a')}/${encodeURIComponent('urn:user:7')}`);
    assert.notEqual(collection.lastEventID, 'earliest', 'the announcement was an event');
    const one = await fetch(`${served.endpoint}/subscriptions/Exact/${encodeURIComponent('https://example.com/a')}/${encodeURIComponent('urn:user:7')}`, { headers: { authorization: `Bearer ${watchAll}` } });
    assert.equal(one.status, 200);
    assert.equal(((await one.json()) as { subscriber: string }).subscriber, 'urn:user:7');
    const none = await fetch(`${served.endpoint}/subscriptions/Exact/nothing/nobody`, { headers: { authorization: `Bearer ${watchAll}` } });
    assert.equal(none.status, 404);
    const narrow = await fetch(`${served.endpoint}/subscriptions`, { headers: { authorization: `Bearer ${await subscriber07(['https://example.com/a'])}` } });
    assert.equal(narrow.status, 403);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(anonymousWatcher.events, [], 'announcements are private updates');
    subscriber.res.destroy();
    anonymousWatcher.res.destroy();
  });

  test('events on subscribe and unsubscribe, and the API, for a token allowed to see them', async () => {
    const served = await serve({ subscriberKey: SUBSCRIBER_KEY, anonymous: true });
    const watcherToken = await subscriber07(['/.well-known/mercure/subscriptions{/topic}{/subscriber}', '/.well-known/mercure/subscriptions']);
    const watcher = await subscribe(served, `topic=${encodeURIComponent('/.well-known/mercure/subscriptions/{topic}/{subscriber}')}`, { authorization: `Bearer ${watcherToken}` });
    const subscriber = await subscribe(served, 'topic=https://example.com/books/{id}', { authorization: `Bearer ${await subscriber07([], { name: 'reader' })}` });
    const books = (event: { data: string }): boolean => (JSON.parse(event.data) as { topic: string }).topic === 'https://example.com/books/{id}';
    await watcher.until(() => watcher.events.some(books));
    const started = JSON.parse(watcher.events.find(books)!.data) as Record<string, unknown>;
    assert.equal(started.type, 'Subscription');
    assert.equal(started.topic, 'https://example.com/books/{id}');
    assert.equal(started.active, true);
    assert.deepEqual(started.payload, { name: 'reader' });
    assert.match(String(started.id), /^\/\.well-known\/mercure\/subscriptions\/https%3A%2F%2Fexample\.com%2Fbooks%2F%7Bid%7D\/urn%3Auuid%3A/);
    const api = await fetch(`${served.endpoint}/subscriptions`, { headers: { authorization: `Bearer ${watcherToken}` } });
    assert.equal(api.status, 200);
    assert.equal(api.headers.get('content-type'), 'application/ld+json');
    const listing = (await api.json()) as { type: string; subscriptions: Array<Record<string, unknown>>; lastEventID: string };
    assert.equal(listing.type, 'Subscriptions');
    const listed = listing.subscriptions.find((doc) => doc.topic === 'https://example.com/books/{id}');
    assert.ok(listed !== undefined, JSON.stringify(listing));
    // The fields both drafts name, and the subscriber's payload: nothing of the hub's bookkeeping.
    assert.deepEqual(Object.keys(listed).sort(), ['active', 'id', 'match', 'matchType', 'payload', 'subscriber', 'topic', 'type']);
    const forbidden = await fetch(`${served.endpoint}/subscriptions`);
    assert.equal(forbidden.status, 401);
    subscriber.res.destroy();
    await watcher.until(() => watcher.events.some((event) => (JSON.parse(event.data) as { active: boolean; topic: string }).active === false && (JSON.parse(event.data) as { topic: string }).topic === 'https://example.com/books/{id}'));
    watcher.res.destroy();
  });

  test('subscriber ids: one per connection for all its subscriptions, unique among active ones for the same sub', async () => {
    const served = await serve({ subscriberKey: SUBSCRIBER_KEY, anonymous: true });
    const watchAll = await subscriber07(['*']);
    const before = await api(served, '', watchAll);
    assert.equal(before.status, 200);
    assert.equal(before.body.lastEventID, 'earliest', 'no event dispatched yet');
    assert.equal(before.body['@context'], 'https://mercure.rocks/');

    const both = await subscribe(served, 'topic=a&topic=b');
    const listed = (await api(served, '', watchAll)).body.subscriptions!;
    assert.deepEqual(listed.map((doc) => doc.topic).sort(), ['a', 'b']);
    assert.equal(new Set(listed.map((doc) => doc.subscriber)).size, 1, 'one connection, one subscriber');
    both.res.destroy();
    await waitFor(async () => (await api(served, '', watchAll)).body.subscriptions!.length === 0);

    const token = await subscriber08([{ match: 'https://example.com/a' }], { sub: 'urn:user:7' });
    const selector = `/Exact/${encodeURIComponent('https://example.com/a')}`;
    const first = await subscribe(served, `match=${encodeURIComponent('https://example.com/a')}`, { authorization: `Bearer ${token}` });
    const second = await subscribe(served, `match=${encodeURIComponent('https://example.com/a')}`, { authorization: `Bearer ${token}` });
    const two = (await api(served, selector, watchAll)).body.subscriptions!;
    assert.equal(two.length, 2);
    const ids = two.map((doc) => String(doc.subscriber));
    assert.ok(ids.includes('urn:user:7'), JSON.stringify(ids));
    assert.ok(ids.some((id) => id.startsWith('urn:user:7#')), JSON.stringify(ids));
    assert.equal(new Set(two.map((doc) => doc.id)).size, 2, 'two subscriptions, two ids');
    const secondId = ids.find((id) => id !== 'urn:user:7')!;
    first.res.destroy();
    await waitFor(async () => (await api(served, selector, watchAll)).body.subscriptions!.length === 1);
    const third = await subscribe(served, `match=${encodeURIComponent('https://example.com/a')}`, { authorization: `Bearer ${token}` });
    const now = (await api(served, selector, watchAll)).body.subscriptions!.map((doc) => String(doc.subscriber));
    assert.equal(now.length, 2);
    assert.equal(new Set(now).size, 2, `still unique: ${JSON.stringify(now)}`);
    assert.ok(now.includes(secondId));
    second.res.destroy();
    third.res.destroy();
  });

  test('announcement documents: @context, the draft-08 payload, the same document in the API', async () => {
    const served = await serve({ subscriberKey: SUBSCRIBER_KEY, anonymous: true });
    const watchAll = await subscriber07(['*']);
    const watcher = await subscribe(served, `match_urlpattern=${encodeURIComponent('/.well-known/mercure/subscriptions/Exact/:match/:subscriber')}`, { authorization: `Bearer ${watchAll}` });
    const token = await subscriber08([{ match: 'https://example.com/a' }], { sub: 'urn:user:8', payload: { role: 'admin' } });
    const subscriber = await subscribe(served, `match=${encodeURIComponent('https://example.com/a')}`, { authorization: `Bearer ${token}` });
    await watcher.until(() => watcher.events.length >= 1, 5000, 'the start announcement');
    const started = JSON.parse(watcher.events[0]!.data) as Record<string, unknown>;
    assert.equal(started['@context'], 'https://mercure.rocks/');
    assert.deepEqual([started.type, started.matchType, started.match, started.subscriber, started.active], ['Subscription', 'Exact', 'https://example.com/a', 'urn:user:8', true]);
    assert.deepEqual(started.payload, { role: 'admin' });
    const one = await api(served, `/Exact/${encodeURIComponent('https://example.com/a')}/${encodeURIComponent('urn:user:8')}`, watchAll);
    assert.equal(one.status, 200);
    const { lastEventID, ...document } = one.body;
    assert.equal(typeof lastEventID, 'string');
    assert.deepEqual(document, started, 'the single-subscription URL shows the event\'s document');
    assert.equal((await api(served, `/exact/${encodeURIComponent('https://example.com/a')}/${encodeURIComponent('urn:user:8')}`, watchAll)).status, 404, 'path segments are case-sensitive');
    subscriber.res.destroy();
    watcher.res.destroy();
  });
});

describe('draft-08 subscribers, end to end', () => {
  test('an at+jwt token: private updates its Exact details allow reach a URL-pattern subscription; the stream ends at exp', async () => {
    const served = await serve({ subscriberKey: SUBSCRIBER_KEY });
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await subscriber08([{ match: 'https://example.com/books/1' }, { match: 'https://example.com/books/7' }], { exp });
    const reader = await subscribe(served, `matchURLPattern=${encodeURIComponent('https://example.com/books/:id')}`, { authorization: `Bearer ${token}` });
    const publisher = await publisher08();
    const allowed = await publish(served, [['topic', 'https://example.com/books/1'], ['data', 'one'], ['private', 'on']], publisher);
    await publish(served, [['topic', 'https://example.com/books/2'], ['data', 'two'], ['private', 'on']], publisher);
    const sentinel = await publish(served, [['topic', 'https://example.com/books/3'], ['data', 'public']], publisher);
    await reader.until(() => reader.events.some((event) => event.id === sentinel.body));
    assert.deepEqual(reader.events.map((event) => event.id), [allowed.body, sentinel.body]);
    await reader.until(() => reader.ended, 5000, 'the stream to end at exp');
    assert.ok(Date.now() <= exp * 1000 + 1500, `ended ${Date.now() - exp * 1000} ms after exp`);
  });

  test('a token in the query makes the answer private to caches', async () => {
    const served = await serve({ subscriberKey: SUBSCRIBER_KEY });
    const reader = await subscribe(served, `topic=a&authorization=${await subscriber07(['a'])}`);
    assert.match(String(reader.res.headers['cache-control']), /^private\b/);
    const listing = await fetch(`${served.endpoint}/subscriptions?authorization=${await subscriber07(['*'])}`);
    assert.equal(listing.status, 200);
    assert.match(String(listing.headers.get('cache-control')), /^private\b/, 'the API answer too');
    const header = await subscribe(served, 'topic=a', { authorization: `Bearer ${await subscriber07(['a'])}` });
    assert.doesNotMatch(String(header.res.headers['cache-control']), /private/);
    reader.res.destroy();
    header.res.destroy();
  });
});

describe('the Last-Event-ID answer never names what the subscriber may not see', () => {
  test('it scans back at most 1,000 events for one it may see, then says earliest', async () => {
    for (const [privates, expected] of [
      [999, 'a0'],
      [1001, 'earliest'],
    ] as const) {
      const served = await serve({}, 2000);
      await served.hub.publish('a', { data: 'public' }, { id: 'a0' });
      for (let n = 0; n < privates; n++) await served.hub.publish('a', { data: 'secret' }, { id: `p${n}`, private: true });
      const reader = await subscribe(served, 'topic=a', { 'last-event-id': `p${privates - 1}` });
      assert.equal(reader.res.headers['last-event-id'], expected, `${privates} private events after a0`);
      reader.res.destroy();
    }
  });
});
