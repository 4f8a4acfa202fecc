/**
 * The Mercure endpoint of the hub server (`createHubServer`, in-process) under Chromium's own
 * `EventSource`, written from draft-07 (tag v0.24.2) and draft-08: a page on another origin
 * (the test's own server, allowed by `cors`) subscribes anonymously and with the
 * `mercureAuthorization` cookie (HttpOnly, sent by `withCredentials`), publications arrive as
 * Symfony's client sends them (form fields, a bearer token), and a stream the hub closes at the
 * token's `exp` is resumed by the browser with `Last-Event-ID`.
 *
 * Chromium missing: skipped loudly, failed under CI=true (tests/chromium.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../../chromium.js';
import { listen, waitFor, type Running } from '../../helpers.js';
import { closeAll, PUBLISHER_KEY, sign, startHub, SUBSCRIBER_KEY, type TestHub } from '../../server/hub-helpers.js';

const BOOKS = 'https://example.com/books/{id}';

/** The page: helpers that open EventSources and record everything they see, by name. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>mercure</title><script>
window.streams = {};
window.openStream = (name, url, withCredentials, types) => {
  const log = { opens: 0, errors: 0, states: [], events: [] };
  const source = new EventSource(url, { withCredentials });
  const record = (event) => log.events.push({ type: event.type, data: event.data, id: event.lastEventId });
  source.onopen = () => log.opens++;
  source.onerror = () => { log.errors++; log.states.push(source.readyState); };
  source.onmessage = record;
  for (const type of types) source.addEventListener(type, record);
  window.streams[name] = { source, log };
};
window.logOf = (name) => window.streams[name].log;
</script><p>mercure test page</p>`;

interface Seen {
  type: string;
  data: string;
  id: string;
}
interface Log {
  opens: number;
  errors: number;
  states: number[];
  events: Seen[];
}

let pageServer: Running;
let hub: TestHub;
let endpoint: string;

before(async () => {
  pageServer = await listen((req, res) => {
    if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    else res.writeHead(404).end();
  });
  // The page is on another origin (another port): allowed by cors, with credentials.
  hub = await startHub({ publisherKey: PUBLISHER_KEY, subscriberKey: SUBSCRIBER_KEY, anonymous: true, cors: [pageServer.url] });
  endpoint = `${hub.url}/.well-known/mercure`;
});
after(async () => {
  await closeAll();
  await pageServer.close();
});

const publisherToken = (): Promise<string> => sign({ mercure: { publish: ['*'] } });
const subscriberToken = (topics: string[], exp?: number): Promise<string> => sign({ mercure: { subscribe: topics } }, { key: SUBSCRIBER_KEY, exp });

/** A publication as Symfony's Mercure client sends it; resolves with the id the hub answered. */
async function publish(fields: Array<[string, string]>): Promise<string> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { authorization: `Bearer ${await publisherToken()}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
    signal: AbortSignal.timeout(5000),
  });
  const body = await response.text();
  assert.equal(response.status, 200, `publish ${JSON.stringify(fields)}: ${body}`);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  return body;
}

interface Session {
  browser: Browser;
  context: BrowserContext;
  page: Page;
}

/** Chromium with the test page open, or undefined when the test was skipped. */
async function openPage(t: TestContext, what: string): Promise<Session | undefined> {
  const browser = await launchChromium(t, what);
  if (browser === undefined) return undefined;
  t.after(() => browser.close());
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  await page.goto(`${pageServer.url}/`, { timeout: 10_000 });
  return { browser, context, page };
}

/** Opens a named EventSource on the hub and waits until it is open and subscribed on the server. */
async function openStream(page: Page, name: string, query: string, { withCredentials = false, types = [] as string[] } = {}): Promise<void> {
  const before = hub.hub.stats().connections;
  await page.evaluate(([n, url, credentials, list]) => (window as any).openStream(n, url, credentials, list), [name, `${endpoint}?${query}`, withCredentials, types] as const);
  await page.waitForFunction((n) => (window as any).logOf(n).opens >= 1, name, { timeout: 10_000 });
  await waitFor(() => hub.hub.stats().connections > before, 5000, `the hub to count ${name}`);
}

const logOf = (page: Page, name: string): Promise<Log> => page.evaluate((n) => (window as any).logOf(n) as Log, name);

/** Waits until `name` has seen an event with `id`; then returns its log. */
async function until(page: Page, name: string, id: string, ms = 10_000): Promise<Log> {
  try {
    await page.waitForFunction(([n, wanted]) => (window as any).logOf(n).events.some((event: Seen) => event.id === wanted), [name, id] as const, { timeout: ms });
  } catch (error) {
    throw new Error(`${name} never saw the event ${id}; its log: ${JSON.stringify(await logOf(page, name))}`, { cause: error });
  }
  return logOf(page, name);
}

const closeStreams = (page: Page): Promise<void> => page.evaluate(() => Object.values((window as any).streams).forEach((s: any) => s.source.close()));

describe('Mercure in Chromium', () => {
  test('anonymous EventSources by topic (URI template), match and match_urlpattern get the public updates meant for them, with the publisher\'s ids', async (t) => {
    const session = await openPage(t, 'anonymous Mercure subscriptions');
    if (session === undefined) return;
    const { page } = session;
    await openStream(page, 'template', `topic=${encodeURIComponent(BOOKS)}`);
    await openStream(page, 'exact', `match=${encodeURIComponent('https://example.com/foo')}`);
    await openStream(page, 'pattern', `match_urlpattern=${encodeURIComponent('https://example.com/books/:id')}`);

    const book1 = await publish([['topic', 'https://example.com/books/1'], ['data', '{"title":"one"}'], ['id', 'https://example.com/rev/book1']]);
    assert.equal(book1, 'https://example.com/rev/book1', 'the publisher\'s id comes back as given');
    const foo = await publish([['topic', 'https://example.com/foo'], ['data', 'line one\nline two']]);
    assert.match(foo, /^urn:uuid:[0-9a-f-]{36}$/, 'a generated id is an IRI');
    // Private: no anonymous subscriber may see it, whatever it selects.
    await publish([['topic', 'https://example.com/books/2'], ['topic', 'https://example.com/foo'], ['data', 'secret'], ['private', 'on']]);
    // Matched by none of them: books/{id} is one segment, and the URL pattern too.
    await publish([['topic', 'https://example.com/books/1/pages'], ['data', 'nobody']]);
    // Alternate topics: it reaches the subscribers of either one, once.
    const both = await publish([['topic', 'https://example.com/foo'], ['topic', 'https://example.com/books/3'], ['data', 'both']]);

    const template = await until(page, 'template', both);
    const exact = await until(page, 'exact', both);
    const pattern = await until(page, 'pattern', both);
    const summary = (log: Log): Array<[string, string, string]> => log.events.map((event) => [event.type, event.id, event.data]);
    assert.deepEqual(summary(template), [['message', book1, '{"title":"one"}'], ['message', both, 'both']]);
    assert.deepEqual(summary(pattern), [['message', book1, '{"title":"one"}'], ['message', both, 'both']]);
    assert.deepEqual(summary(exact), [['message', foo, 'line one\nline two'], ['message', both, 'both']]);
    for (const log of [template, exact, pattern]) assert.equal(log.errors, 0, 'no error on an open stream');
    await closeStreams(page);
  });

  test('a subscriber with the mercureAuthorization cookie (HttpOnly, withCredentials) gets the private updates its claim allows; an anonymous one on the same page does not', async (t) => {
    const session = await openPage(t, 'cookie-authenticated Mercure subscriptions');
    if (session === undefined) return;
    const { page, context } = session;
    await context.addCookies([
      { name: 'mercureAuthorization', value: await subscriberToken(['https://example.com/books/1']), url: hub.url, httpOnly: true, sameSite: 'Strict' },
    ]);
    // HttpOnly: the page's script cannot read it; the browser still sends it.
    assert.equal(await page.evaluate(() => document.cookie), '');
    const responses: Array<{ url: string; headers: Record<string, string> }> = [];
    page.on('response', (response) => {
      if (response.url().startsWith(endpoint)) responses.push({ url: response.url(), headers: response.headers() });
    });
    await openStream(page, 'cookie', `topic=${encodeURIComponent(BOOKS)}`, { withCredentials: true });
    await openStream(page, 'anonymous', `topic=${encodeURIComponent(BOOKS)}`);

    const allowed = await publish([['topic', 'https://example.com/books/1'], ['data', 'for the cookie'], ['private', 'on']]);
    const other = await publish([['topic', 'https://example.com/books/2'], ['data', 'not allowed'], ['private', 'on']]);
    // A private update whose alternate topic the claim allows is allowed too (draft-07).
    const alternate = await publish([['topic', 'https://example.com/books/4'], ['topic', 'https://example.com/books/1'], ['data', 'by its alternate'], ['private', 'on']]);
    const open = await publish([['topic', 'https://example.com/books/3'], ['data', 'public']]);
    assert.notEqual(other, '');

    const cookie = await until(page, 'cookie', open);
    const anonymous = await until(page, 'anonymous', open);
    assert.deepEqual(cookie.events.map((event) => [event.id, event.data]), [
      [allowed, 'for the cookie'],
      [alternate, 'by its alternate'],
      [open, 'public'],
    ]);
    assert.deepEqual(anonymous.events.map((event) => [event.id, event.data]), [[open, 'public']]);
    // The credentialed CORS answer names the page's origin, never "*" (draft-08 MUST).
    const credentialed = responses.find((response) => response.url.includes('topic='));
    assert.equal(credentialed?.headers['access-control-allow-origin'], pageServer.url);
    await closeStreams(page);
  });

  test('typed updates (the type field) reach addEventListener(type), not onmessage', async (t) => {
    const session = await openPage(t, 'typed Mercure updates');
    if (session === undefined) return;
    const { page } = session;
    await openStream(page, 'typed', 'topic=typed', { types: ['book-updated'] });
    await openStream(page, 'untyped', 'topic=typed');
    const updated = await publish([['topic', 'typed'], ['data', '{"n":1}'], ['type', 'book-updated']]);
    const other = await publish([['topic', 'typed'], ['data', 'other type'], ['type', 'something-else']]);
    const plain = await publish([['topic', 'typed'], ['data', 'plain']]);
    const typed = await until(page, 'typed', plain);
    const untyped = await until(page, 'untyped', plain);
    assert.deepEqual(typed.events.map((event) => [event.type, event.id, event.data]), [
      ['book-updated', updated, '{"n":1}'],
      ['message', plain, 'plain'],
    ]);
    assert.deepEqual(untyped.events.map((event) => [event.type, event.id]), [['message', plain]]);
    assert.notEqual(other, '');
    await closeStreams(page);
  });

  test('the hub closes the stream at the token\'s exp; the browser reconnects with Last-Event-ID (the publisher\'s id) and the refreshed cookie, and gets what it missed, once', async (t) => {
    const session = await openPage(t, 'Mercure reconnection with Last-Event-ID');
    if (session === undefined) return;
    const { page, context } = session;
    const topic = 'https://example.com/resume/1';
    const cookie = async (exp: number): Promise<void> =>
      context.addCookies([{ name: 'mercureAuthorization', value: await subscriberToken([topic], exp), url: hub.url, httpOnly: true, sameSite: 'Strict' }]);
    const requests: Array<Record<string, string>> = [];
    const responses: Array<Record<string, string>> = [];
    page.on('request', (request) => {
      if (request.url().startsWith(`${endpoint}?`)) void request.allHeaders().then((headers) => requests.push(headers));
    });
    page.on('response', (response) => {
      if (response.url().startsWith(`${endpoint}?`)) responses.push(response.headers());
    });
    // A token that expires in 2 to 3 s: the hub must end the connection then (draft-07 MUST).
    const exp = Math.floor(Date.now() / 1000) + 3;
    await cookie(exp);
    await openStream(page, 'resume', `topic=${encodeURIComponent(topic)}`, { withCredentials: true });
    // The retry field sets the browser's reconnection delay: room to publish during the gap.
    const first = await publish([['topic', topic], ['data', 'before'], ['id', 'https://example.com/rev/before'], ['retry', '1500'], ['private', 'on']]);
    await until(page, 'resume', first);
    // The app refreshes the cookie before the old token runs out (same name, domain and path).
    await cookie(Math.floor(Date.now() / 1000) + 3600);

    const connectionsBefore = hub.hub.stats().connections;
    await waitFor(() => hub.hub.stats().connections < connectionsBefore, 6000, 'the hub to close the stream at the token\'s exp');
    const closedAt = Date.now();
    assert.ok(closedAt <= exp * 1000 + 1000, `closed ${closedAt - exp * 1000} ms after exp`);
    const missedOwn = await publish([['topic', topic], ['data', 'missed 1'], ['id', 'https://example.com/rev/missed'], ['private', 'on']]);
    const missedGenerated = await publish([['topic', topic], ['data', 'missed 2']]);
    assert.equal(hub.hub.stats().connections, connectionsBefore - 1, 'both were published before the browser came back (else nothing was replayed)');
    const log = await until(page, 'resume', missedGenerated, 8000);
    await waitFor(() => responses.length >= 2, 5000, 'the reconnection\'s answer');
    // Nothing more, nothing twice: one more live update closes the list.
    const live = await publish([['topic', topic], ['data', 'live']]);
    const final = await until(page, 'resume', live);
    assert.deepEqual(final.events.map((event) => [event.id, event.data]), [
      [first, 'before'],
      [missedOwn, 'missed 1'],
      [missedGenerated, 'missed 2'],
      [live, 'live'],
    ]);
    assert.ok(log.errors >= 1 && log.states[0] === 0, `the end of the stream is an error with readyState CONNECTING: ${JSON.stringify(log)}`);
    assert.equal(final.opens, 2, 'reopened once');
    assert.equal(requests.length, 2, `two requests: ${JSON.stringify(requests)}`);
    assert.equal(requests[0]!['last-event-id'], undefined);
    assert.equal(requests[1]!['last-event-id'], first, 'the reconnection carries the publisher\'s id');
    // The hub's answer names the id before the first event it sends (draft-07 MUST).
    assert.equal(responses[1]!['last-event-id'], first);
    await closeStreams(page);
  });
});
