/**
 * serve-sse/client in Debian's Chromium (SPEC §6c): pages of one browser profile share one
 * connection and hand it over without a gap or a duplicate; retries back off; a 401 asks the
 * headers function again; a stalled connection is replaced and resumes with Last-Event-ID; 204
 * ends it; and the parser agrees with Chromium's native EventSource byte for byte, chunk split by
 * chunk split. The page (fixtures/harness.html) imports src/client bundled by esbuild; the test's
 * own server serves it, the bundle and the event streams on one origin.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, test, type TestContext } from 'node:test';
import { build } from 'esbuild';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createHub, defaultOnConnect, type Hub } from '../../src/index.js';
import type { EventSource as SseClient, EventSourceOptions } from '../../src/client/index.js';
import { launchChromium } from '../chromium.js';
import { listen, waitFor, type Running } from '../helpers.js';
import { TcpProxy } from '../tcp-proxy.js';

// ---------------------------------------------------------------------------------------------
// The page's side (fixtures/harness.html), as the test sees it.

interface Log {
  opens: Array<{ readyState: number; at: number }>;
  events: Array<{ type: string; data: string; lastEventId: string; origin: string }>;
  errors: Array<{ status: number | undefined; readyState: number; at: number }>;
}
interface Harness {
  SseClient: typeof SseClient;
  record(source: EventTarget, types?: string[]): Log;
  source: SseClient;
  log: Log;
}
type W = Window & Harness;

// ---------------------------------------------------------------------------------------------
// One server for the file: the page, the client bundle, and whatever routes each test adds.

type Route = (req: IncomingMessage, res: ServerResponse) => void;
const routes = new Map<string, Route>();
const prefixRoutes = new Map<string, Route>();
const HARNESS = readFileSync(new URL('./fixtures/harness.html', import.meta.url));
let bundle = '';
let server: Running;
let base = '';
const hubs: Hub[] = [];
const proxies: TcpProxy[] = [];
let browser: Browser | undefined;

before(async () => {
  const { outputFiles } = await build({
    entryPoints: [new URL('../../src/client/index.ts', import.meta.url).pathname],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
  });
  bundle = outputFiles[0]!.text;
  server = await listen((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const route = routes.get(path) ?? [...prefixRoutes].find(([prefix]) => path.startsWith(prefix))?.[1];
    if (route !== undefined) return route(req, res);
    // Connection: close on everything but the streams: through a TcpProxy, the only connection
    // left open is then the event stream (what the stall case freezes).
    if (path === '/') return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', connection: 'close' }).end(HARNESS);
    if (path === '/client.js') return void res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', connection: 'close' }).end(bundle);
    res.writeHead(404, { connection: 'close' }).end();
  });
  base = server.url;
});

after(async () => {
  await browser?.close();
  for (const proxy of proxies) await proxy.close();
  for (const hub of hubs) await hub.close({ timeout: 1000 });
  await server?.close();
});

/** The file's browser, launched once; undefined (the test skipped) where Chromium is missing. */
async function chromium(t: TestContext): Promise<Browser | undefined> {
  browser ??= await launchChromium(t, 'serve-sse/client in a browser');
  return browser;
}

function newHub(options: Parameters<typeof createHub>[0] = {}): Hub {
  const hub = createHub(options);
  hubs.push(hub);
  return hub;
}

async function openPage(context: BrowserContext, origin = base): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${origin}/`, { timeout: 10_000 });
  await page.waitForFunction(() => 'SseClient' in window, undefined, { timeout: 10_000 });
  return page;
}

/** Opens `window.source` (serve-sse/client) on `url` in `page`, with `window.log` recording it. */
async function openSource(page: Page, url: string, options: EventSourceOptions = {}, types: string[] = ['message']): Promise<void> {
  await page.evaluate(
    ({ url, options, types }) => {
      const w = window as unknown as W;
      w.source = new w.SseClient(url, options);
      w.log = w.record(w.source, types);
    },
    { url, options, types },
  );
}

const readLog = (page: Page): Promise<Log> => page.evaluate(() => (window as unknown as W).log);
const readyState = (page: Page): Promise<number> => page.evaluate(() => (window as unknown as W).source.readyState);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits (bounded) until `page` has recorded at least `count` events. */
async function eventsAtLeast(page: Page, count: number, ms = 5000): Promise<void> {
  await page.waitForFunction((count) => (window as unknown as W).log.events.length >= count, count, { timeout: ms, polling: 20 });
}

/** `promise`, or a failure naming `what` after `ms`. */
async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const header = (req: IncomingMessage, name: string): string | undefined => {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
};

// ---------------------------------------------------------------------------------------------
// 1. Sharing

test('20 pages of one profile open the same URL: one connection at the server, every page OPEN with every event', async (t) => {
  const chrome = await chromium(t);
  if (chrome === undefined) return;
  const hub = newHub();
  const handler = hub.handler();
  let requests = 0;
  routes.set('/share/events', (req, res) => {
    requests++;
    handler(req, res);
  });
  const context = await chrome.newContext();
  try {
    const pages = await Promise.all(Array.from({ length: 20 }, () => openPage(context)));
    const url = `${base}/share/events?topic=shared`;
    await Promise.all(pages.map((page) => openSource(page, url)));
    await Promise.all(pages.map((page) => page.waitForFunction(() => (window as unknown as W).source.readyState === 1, undefined, { timeout: 10_000, polling: 20 })));
    await waitFor(() => hub.stats().connections === 1, 5000, 'the hub to hold the one connection');
    const sent: Array<{ data: string; id: string }> = [];
    for (let n = 1; n <= 5; n++) {
      const data = `shared ${n}`;
      sent.push({ data, id: await hub.publish('shared', { data }) });
    }
    await Promise.all(pages.map((page) => eventsAtLeast(page, sent.length)));
    await sleep(200); // room for a duplicate to show
    const logs = await Promise.all(pages.map(readLog));
    for (const [i, log] of logs.entries()) {
      assert.deepEqual(
        log.events.map(({ data, lastEventId }) => ({ data, id: lastEventId })),
        sent,
        `page ${i}: every event once, in order`,
      );
      assert.equal(log.opens.length, 1, `page ${i}: one open event`);
      assert.deepEqual(log.errors, [], `page ${i}: no error`);
    }
    assert.equal(requests, 1, 'the server was asked for the stream once');
    assert.equal(hub.stats().connections, 1);
    t.diagnostic(`20 pages: ${requests} request, ${hub.stats().connections} connection; ${sent.length} events reached every page`);
  } finally {
    await context.close();
  }
});

// ---------------------------------------------------------------------------------------------
// 2. Handover

test('the page holding the connection goes mid-stream (page closed, or source.close()): every other page gets every event once, in order', async (t) => {
  const chrome = await chromium(t);
  if (chrome === undefined) return;
  const hub = newHub();
  const handler = hub.handler({ keepAlive: false });
  // Which page holds the connection: the one whose headers function made the request (it runs
  // in the holder only), as the server sees it.
  const requests: Array<{ page: string | undefined; lastEventId: string | undefined; at: number }> = [];
  routes.set('/handover/events', (req, res) => {
    requests.push({ page: header(req, 'x-page'), lastEventId: header(req, 'last-event-id'), at: Date.now() });
    handler(req, res);
  });
  const context = await chrome.newContext();
  let publishing = true;
  let published = 0;
  let publisher: Promise<void> | undefined;
  try {
    const names = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5'];
    const pages = new Map<string, Page>();
    for (const name of names) pages.set(name, await openPage(context));
    const url = `${base}/handover/events?topic=numbers`;
    for (const [name, page] of pages) {
      await page.evaluate(
        ({ url, name }) => {
          const w = window as unknown as W;
          w.source = new w.SseClient(url, { headers: () => ({ 'x-page': name }) });
          w.log = w.record(w.source);
        },
        { url, name },
      );
    }
    for (const page of pages.values()) await page.waitForFunction(() => (window as unknown as W).source.readyState === 1, undefined, { timeout: 10_000, polling: 20 });
    await waitFor(() => hub.stats().connections === 1 && requests.length === 1, 5000, 'one connection');

    // A steady numbered stream, every 20 ms.
    publisher = (async () => {
      while (publishing) {
        await hub.publish('numbers', { data: String(++published) });
        await sleep(20);
      }
    })();

    const alive = new Set(names);
    const closedSources = new Set<string>();
    const takeovers: Array<{ from: string; how: string; to: string; ms: number; lastEventId: string | undefined }> = [];
    for (let round = 0; round < 4; round++) {
      await sleep(300);
      const holder = requests.at(-1)!.page!;
      assert.ok(alive.has(holder), `the holder ${holder} is one of the live pages`);
      const how = round % 2 === 0 ? 'page closed' : 'source.close()';
      const before = requests.length;
      const at = Date.now();
      if (how === 'page closed') await pages.get(holder)!.close();
      else {
        await pages.get(holder)!.evaluate(() => (window as unknown as W).source.close());
        closedSources.add(holder);
      }
      alive.delete(holder);
      await waitFor(() => requests.length > before, 5000, `a takeover after the holder ${holder} went (${how})`);
      await waitFor(() => hub.stats().connections === 1, 5000, 'the old connection to go');
      const next = requests[before]!;
      assert.ok(next.page !== undefined && alive.has(next.page), `the new holder (${next.page}) is a live page`);
      assert.ok(next.lastEventId !== undefined && next.lastEventId !== '', 'the takeover resumes with Last-Event-ID');
      takeovers.push({ from: holder, how, to: next.page, ms: next.at - at, lastEventId: next.lastEventId });
    }
    await sleep(300);
    publishing = false;
    await publisher;
    const expected = Array.from({ length: published }, (_, i) => String(i + 1));
    for (const name of alive) await eventsAtLeast(pages.get(name)!, published);
    await sleep(200); // room for a duplicate to show
    for (const name of alive) {
      const page = pages.get(name)!;
      const log = await readLog(page);
      assert.deepEqual(
        log.events.map((event) => event.data),
        expected,
        `${name}: every event once, in order`,
      );
      assert.deepEqual(log.errors, [], `${name}: a takeover is invisible (no error)`);
      assert.equal(log.opens.length, 1, `${name}: one open`);
      assert.equal(await readyState(page), 1, `${name} stays OPEN`);
    }
    for (const name of closedSources) {
      const { events } = await readLog(pages.get(name)!);
      const data = events.map((event) => event.data);
      assert.deepEqual(data, expected.slice(0, data.length), `${name} (closed) got a prefix of the stream, no gap, no duplicate`);
    }
    assert.equal(requests.length, 1 + takeovers.length, 'one request per takeover, no more');
    assert.equal(hub.stats().connections, 1);
    t.diagnostic(`${published} events; takeovers: ${takeovers.map((x) => `${x.from}→${x.to} (${x.how}) ${x.ms} ms, Last-Event-ID ${x.lastEventId}`).join('; ')}`);
  } finally {
    publishing = false;
    await publisher;
    await context.close();
  }
});

// ---------------------------------------------------------------------------------------------
// 3. Retries

test('503, 503, then 200: the client gets there, CONNECTING with an error event per failure, the delays growing', async (t) => {
  const chrome = await chromium(t);
  if (chrome === undefined) return;
  const attempts: Array<{ arrived: number; answered?: number }> = [];
  let releaseSecond!: () => void;
  const secondHeld = new Promise<void>((resolve) => (releaseSecond = resolve));
  routes.set('/retry/events', async (req, res) => {
    const attempt = { arrived: Date.now() } as { arrived: number; answered?: number };
    attempts.push(attempt);
    if (attempts.length <= 2) {
      // The second answer waits until the test has looked at the page between attempts.
      if (attempts.length === 2) await bounded(secondHeld, 5000, 'the test to release the second 503');
      res.writeHead(503, { 'content-type': 'text/plain' }).end('busy');
      attempt.answered = Date.now();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write('data: through\n\n');
    attempt.answered = Date.now();
  });
  const context = await chrome.newContext();
  try {
    const page = await openPage(context);
    await openSource(page, `${base}/retry/events`, { retry: 200 });
    await waitFor(() => attempts.length === 2, 5000, 'the second attempt');
    const between = await page.evaluate(() => ({ readyState: (window as unknown as W).source.readyState, errors: (window as unknown as W).log.errors.length }));
    assert.deepEqual(between, { readyState: 0, errors: 1 }, 'retrying: CONNECTING, after one error event');
    releaseSecond();
    await eventsAtLeast(page, 1);
    const log = await readLog(page);
    assert.deepEqual(
      log.errors.map(({ status, readyState }) => ({ status, readyState })),
      [
        { status: 503, readyState: 0 },
        { status: 503, readyState: 0 },
      ],
    );
    assert.deepEqual(log.opens.map((open) => open.readyState), [1]);
    assert.deepEqual(log.events.map((event) => event.data), ['through']);
    assert.equal(await readyState(page), 1);
    assert.equal(attempts.length, 3);
    // The delay: from an answer to the next request, as the server saw them.
    const delays = [attempts[1]!.arrived - attempts[0]!.answered!, attempts[2]!.arrived - attempts[1]!.answered!];
    t.diagnostic(`delays between attempts (retry: 200): ${delays.join(' ms, ')} ms`);
    // docs/client.md: attempt n waits 1 to 1.5 times retry · 2ⁿ: 200–300 ms, then 400–600 ms.
    assert.ok(delays[0]! >= 195, `first delay ${delays[0]} ms ≥ 200`);
    assert.ok(delays[1]! >= 395, `second delay ${delays[1]} ms ≥ 400`);
    assert.ok(delays[1]! > delays[0]!, `the delays grow: ${delays.join(', ')}`);
    assert.ok(delays[1]! < 2000, `second delay ${delays[1]} ms: not far past 600`);
  } finally {
    releaseSecond();
    await context.close();
  }
});

// ---------------------------------------------------------------------------------------------
// 4. 401

test('401: the headers function is asked again for a fresh token, which is accepted, and the stream carries on; a second 401 closes', async (t) => {
  const chrome = await chromium(t);
  if (chrome === undefined) return;
  const hub = newHub();
  let issued = 0;
  routes.set('/token', (_req, res) => void res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end(`t${++issued}`));
  const authorizations: Array<string | undefined> = [];
  const handler = hub.handler({
    // The first token has "expired".
    onConnect: (req) => (req.headers.authorization === 'Bearer t1' ? { status: 401, headers: { 'www-authenticate': 'Bearer' } } : defaultOnConnect(req)),
  });
  routes.set('/auth/events', (req, res) => {
    authorizations.push(header(req, 'authorization'));
    handler(req, res);
  });
  const refused: Array<string | undefined> = [];
  routes.set('/refused/events', (req, res) => {
    refused.push(header(req, 'authorization'));
    res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
  });
  const context = await chrome.newContext();
  try {
    const page = await openPage(context);
    const withToken = async (url: string): Promise<void> =>
      page.evaluate((url) => {
        const w = window as unknown as W;
        w.source = new w.SseClient(url, {
          retry: 100,
          headers: async () => ({ authorization: `Bearer ${await (await fetch('/token')).text()}` }),
        });
        w.log = w.record(w.source);
      }, url);
    await withToken(`${base}/auth/events?topic=private`);
    await page.waitForFunction(() => (window as unknown as W).source.readyState === 1, undefined, { timeout: 5000, polling: 20 });
    await waitFor(() => hub.stats().connections === 1, 5000, 'the subscription');
    const ids = [await hub.publish('private', { data: 'one' }), await hub.publish('private', { data: 'two' })];
    await eventsAtLeast(page, 2);
    const log = await readLog(page);
    assert.deepEqual(authorizations, ['Bearer t1', 'Bearer t2'], 'the second request carried a fresh token');
    assert.equal(issued, 2, 'the headers function ran twice');
    assert.deepEqual(
      log.events.map(({ data, lastEventId }) => [data, lastEventId]),
      [
        ['one', ids[0]],
        ['two', ids[1]],
      ],
    );
    assert.equal(log.opens.length, 1);
    await page.evaluate(() => (window as unknown as W).source.close());

    // A server that refuses the fresh token too: asked once more, then closed with the status.
    issued = 0;
    await withToken(`${base}/refused/events`);
    await page.waitForFunction(() => (window as unknown as W).source.readyState === 2, undefined, { timeout: 5000, polling: 20 });
    await sleep(500); // retry: 100, so a third attempt would have come by now
    const refusedLog = await readLog(page);
    assert.deepEqual(refused, ['Bearer t1', 'Bearer t2'], 'one more token, then no further request');
    assert.deepEqual(
      refusedLog.errors.map(({ status, readyState }) => ({ status, readyState })),
      [{ status: 401, readyState: 2 }],
    );
    assert.equal(refusedLog.opens.length, 0);
  } finally {
    await context.close();
  }
});

// ---------------------------------------------------------------------------------------------
// 5. Stall

test('a stalled connection (a frozen TCP proxy): after stallTimeout the client reconnects with Last-Event-ID and gets what was published meanwhile', async (t) => {
  const chrome = await chromium(t);
  if (chrome === undefined) return;
  const hub = newHub({ history: 100 });
  // Keep-alive comments every 250 ms: a live connection is never silent for stallTimeout.
  const handler = hub.handler({ keepAlive: 250 });
  const requests: Array<{ lastEventId: string | undefined; at: number }> = [];
  routes.set('/stall/events', (req, res) => {
    requests.push({ lastEventId: header(req, 'last-event-id'), at: Date.now() });
    handler(req, res);
  });
  const proxy = await TcpProxy.start(base);
  proxies.push(proxy);
  const context = await chrome.newContext();
  try {
    // The page comes through the proxy too: one origin for the page and the stream.
    const page = await openPage(context, proxy.url('').replace(/\/$/, ''));
    await openSource(page, proxy.url('/stall/events?topic=stall'), { stallTimeout: 1000, retry: 200 });
    await page.waitForFunction(() => (window as unknown as W).source.readyState === 1, undefined, { timeout: 5000, polling: 20 });
    await waitFor(() => hub.stats().connections === 1, 5000, 'the subscription');
    const sent: Array<[string, string]> = [];
    const publish = async (data: string): Promise<void> => void sent.push([data, await hub.publish('stall', { data })]);
    for (const n of [1, 2, 3]) await publish(`before ${n}`);
    await eventsAtLeast(page, 3);
    await waitFor(() => proxy.open === 1, 5000, 'the event stream to be the only connection through the proxy');
    const accepted = proxy.accepted;
    await sleep(600); // keep-alives flow: no stall yet
    assert.equal(requests.length, 1, 'a live connection with keep-alives is not taken for stalled');

    const frozenAt = Date.now();
    proxy.freeze();
    for (const n of [1, 2, 3]) await publish(`meanwhile ${n}`);
    await waitFor(() => requests.length === 2, 5000, 'a new request after the stall');
    const reconnectedAfter = requests[1]!.at - frozenAt;
    assert.ok(proxy.accepted > accepted, 'a new connection reached the proxy');
    assert.equal(requests[1]!.lastEventId, sent[2]![1], 'it resumes after the last event it had');
    await eventsAtLeast(page, 6);
    for (const n of [1, 2]) await publish(`after ${n}`);
    await eventsAtLeast(page, 8);
    await sleep(100);
    const log = await readLog(page);
    assert.deepEqual(
      log.events.map(({ data, lastEventId }) => [data, lastEventId]),
      sent,
      'every event once, in order, across the stall',
    );
    assert.deepEqual(
      log.errors.map(({ status, readyState }) => ({ status, readyState })),
      [{ status: undefined, readyState: 0 }],
      'one error event for the stall, while CONNECTING',
    );
    assert.equal(await readyState(page), 1);
    // No byte for 1000 ms, then a delay of 200–300 ms.
    assert.ok(reconnectedAfter >= 1000, `reconnected ${reconnectedAfter} ms after the freeze: not before stallTimeout`);
    assert.ok(reconnectedAfter < 4000, `reconnected ${reconnectedAfter} ms after the freeze`);
    t.diagnostic(`reconnected ${reconnectedAfter} ms after the freeze (stallTimeout 1000, retry 200); Last-Event-ID ${requests[1]!.lastEventId}`);
  } finally {
    await context.close();
  }
});

// ---------------------------------------------------------------------------------------------
// 6. 204

test('204 ends it for good: CLOSED, an error event with status 204, no further request', async (t) => {
  const chrome = await chromium(t);
  if (chrome === undefined) return;
  let requests = 0;
  routes.set('/gone/events', (_req, res) => {
    requests++;
    res.writeHead(204).end();
  });
  const context = await chrome.newContext();
  try {
    const page = await openPage(context);
    await openSource(page, `${base}/gone/events`, { retry: 100 });
    await page.waitForFunction(() => (window as unknown as W).source.readyState === 2, undefined, { timeout: 5000, polling: 20 });
    await sleep(600); // retry: 100, so a reconnection would have come by now
    const log = await readLog(page);
    assert.deepEqual(
      log.errors.map(({ status, readyState }) => ({ status, readyState })),
      [{ status: 204, readyState: 2 }],
    );
    assert.equal(log.opens.length, 0);
    assert.equal(requests, 1, 'no request after the 204');
    assert.equal(await readyState(page), 2);
  } finally {
    await context.close();
  }
});
