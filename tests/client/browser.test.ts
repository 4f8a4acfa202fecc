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
import { createHub, defaultOnConnect, type Hub, type HubOptions } from '../../src/index.js';
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

function newHub(options: HubOptions = {}): Hub {
  const hub = createHub(options);
  hubs.push(hub);
  return hub;
}

async function openPage(context: BrowserContext, origin = base): Promise<Page> {
  const page = await context.newPage();
  // Generous: twenty pages load at once on two cores.
  await page.goto(`${origin}/`, { timeout: 30_000 });
  await page.waitForFunction(() => 'SseClient' in window, undefined, { timeout: 30_000 });
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

    // A steady numbered stream, one event every 5 ms or so: several in flight at every takeover.
    publisher = (async () => {
      while (publishing) {
        await hub.publish('numbers', { data: String(++published) });
        await sleep(5);
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

// The pages that do not hold the connection are seconds behind on what the holder posted when it
// goes. In Chromium the lock's grant is queued behind the messages already delivered to the page,
// so this holds even without share.ts's barrier (tried: it passes with the barrier removed); the
// barrier covers messages still on their way, which no test here can hold back on purpose:
// tests/client/share.test.ts holds them back with fakes of the two APIs, and fails without it.
test('a takeover while the other pages are behind on what the holder posted: the new holder handles all of it before it resumes, so nothing arrives twice', async (t) => {
  const chrome = await chromium(t);
  if (chrome === undefined) return;
  const hub = newHub({ history: 5000 });
  const handler = hub.handler({ keepAlive: false });
  const requests: Array<{ page: string | undefined; lastEventId: string | undefined }> = [];
  routes.set('/behind/events', (req, res) => {
    requests.push({ page: header(req, 'x-page'), lastEventId: header(req, 'last-event-id') });
    handler(req, res);
  });
  const context = await chrome.newContext();
  try {
    const names = ['q0', 'q1', 'q2'];
    const pages = new Map<string, Page>();
    for (const name of names) pages.set(name, await openPage(context));
    for (const [name, page] of pages) {
      await page.evaluate(
        ({ url, name }) => {
          const w = window as unknown as W & { slow: boolean };
          w.source = new w.SseClient(url, { headers: () => ({ 'x-page': name }) });
          w.log = w.record(w.source);
          // A page that is not the holder takes 2 ms per event: what the holder posts piles up
          // in its queue, and is still there when the connection passes to it.
          w.slow = true;
          w.source.addEventListener('message', () => {
            if (!w.slow) return;
            const until = performance.now() + 2;
            while (performance.now() < until);
          });
        },
        { url: `${base}/behind/events?topic=burst`, name },
      );
    }
    await waitFor(() => hub.stats().connections === 1 && requests.length === 1, 10_000, 'one connection');
    const holder = requests[0]!.page!;
    // The holder reads at full speed.
    await pages.get(holder)!.evaluate(() => void ((window as unknown as W & { slow: boolean }).slow = false));
    const count = 1500;
    for (let i = 1; i <= count; i++) await hub.publish('burst', { data: String(i) });
    // Once the holder has dispatched (and posted) every event, it goes: the others are seconds behind.
    await eventsAtLeast(pages.get(holder)!, count, 10_000);
    await pages.get(holder)!.close();
    await waitFor(() => requests.length === 2, 10_000, 'the takeover');
    const expected = Array.from({ length: count }, (_, i) => String(i + 1));
    const alive = names.filter((name) => name !== holder);
    for (const name of alive) await eventsAtLeast(pages.get(name)!, count, 20_000);
    await sleep(300); // room for a duplicate to show
    for (const name of alive) {
      const { events } = await readLog(pages.get(name)!);
      assert.deepEqual(events.map((event) => event.data), expected, `${name}: every event once, in order`);
    }
    assert.equal(requests[1]!.lastEventId, (await readLog(pages.get(alive[0]!)!)).events.at(-1)!.lastEventId, 'the takeover resumes after the last event the holder posted');
  } finally {
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
  const handler = hub.handler<IncomingMessage>({
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
    // No byte for 1000 ms, then a delay of 200–300 ms; the last byte (a keep-alive) came at most
    // 250 ms before the freeze.
    assert.ok(reconnectedAfter >= 1000 + 200 - 250 - 10, `reconnected ${reconnectedAfter} ms after the freeze: not before stallTimeout`);
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

// ---------------------------------------------------------------------------------------------
// 7. The parser, against Chromium's native EventSource

/** Bytes from text (UTF-8) and raw byte values. */
const bytes = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : Buffer.from(part))));

const TYPES = ['message', 'foo', 'bar'];

/** Streams for the oracle, each setting a short reconnection time so that a run is quick. */
const STREAMS: Record<string, Buffer> = {
  // Line endings, comments, fields: every line of it is a case of the spec's interpretation.
  fields: bytes(
    '\uFEFF: a comment, after a BOM\r\n',
    'retry: 30\r\n',
    'data: CRLF\r\n\r\n',
    'data: CR\rdata: second line\r\r',
    'data: LF\n\n',
    'id: 1\r\nevent: foo\r\ndata: typed\r\n\r\n',
    'unknown: field\nDATA: not data\nEvent: not event\ndata:no space\n\n',
    'data:  two spaces\n\n',
    'data\n\n',
    'data:\n\n',
    'data:\ndata:\n\n',
    'event: foo\n\n',
    'data: after a foo without data\n\n',
    'id: 2\n\n',
    ': a comment\r\n',
    'data: after an id-only event\n\n',
    'id: with\0nul\ndata: an id with NUL is ignored\n\n',
    'id: 3\r\n:comment between\r\ndata: a\r\ndata:\r\ndata: b\r\n\r\n',
    'event:\ndata: empty type\n\n',
    'event: bar\rdata: CR only\r\r',
    'data: a \0 NUL in data\n\n',
    'data: mixed\r\ndata: endings\rdata: here\n\r\n',
    'retry: 3x\n',
    'id: trap\ndata: never dispatched: the stream ends before its blank line',
  ),
  // UTF-8: multi-byte characters (which chunk splits cut), a BOM that is data, bytes that are not UTF-8.
  utf8: bytes(
    'retry: 30\n',
    'data: héllo wörld € 𝄞 日本語\n\n',
    'event: bar\ndata: \uFEFF a BOM after the start is data\n\n',
    'id: 7\r\ndata: 4-byte 😀😀\r\n\r\n',
    'data: invalid ',
    [0xff, 0xfe],
    ' bytes and a cut ',
    [0xe2, 0x82],
    ' sequence\n\n',
    '\uFEFFdata: a BOM here starts a field name\n\n',
    'data: last\n\n',
  ),
  // A BOM then a field at once: not stripped, the event would be lost.
  bom: bytes('\uFEFFdata: first, after a BOM\n\nretry: 30\nid: 9\ndata: second\n\n'),
  // The last id reset to empty: the reconnection sends no Last-Event-ID.
  reset: bytes('retry: 30\nid: 5\ndata: with an id\n\nid\ndata: id reset\n\n'),
  // An id outside Latin-1: what goes in the Last-Event-ID header.
  unicodeId: bytes('retry: 30\nid: ω€😀\ndata: an id in UTF-8\n\n'),
  // An id inside Latin-1 but not ASCII.
  latinId: bytes('retry: 30\nid: é\ndata: a Latin-1 id\n\n'),
};

/** Streams for the reconnection time: each should leave it at 400 ms. */
const RETRY_STREAMS: Record<string, Buffer> = {
  // A valid retry, then invalid ones (ignored); the defaults (3 s native, 1 s ours) are far.
  invalid: bytes('retry: 400\nretry: 5000x\nretry:  6000\nretry: -1\nretry: 1e4\nRetry: 7000\nretry 8000\ndata: r\n\n'),
  leadingZeros: bytes('retry: 0400\ndata: r\n\n'),
  last: bytes('retry: 9000\r\nretry:400\r\ndata: r\r\n\r\n'),
};

interface OracleRun {
  bytes: Buffer;
  /** Byte offsets where the server stops, flushes and waits `gap` ms before the rest. */
  cuts: number[];
  gap: number;
}
interface OracleSide {
  requests: Array<{ at: number; lastEventId: string | undefined }>;
  endedAt?: number;
}
const oracleRuns = new Map<string, OracleRun>();
const oracleSides = new Map<string, OracleSide>();

prefixRoutes.set('/oracle/', (req, res) => {
  // /oracle/<run>/<native|ours>: the run's bytes the first time, 204 (stop) after.
  const [, , name, kind] = (req.url ?? '').split('?')[0]!.split('/');
  const run = oracleRuns.get(name!);
  if (run === undefined || (kind !== 'native' && kind !== 'ours')) return void res.writeHead(404).end();
  const key = `${name}/${kind}`;
  const side = oracleSides.get(key) ?? { requests: [] };
  oracleSides.set(key, side);
  side.requests.push({ at: Date.now(), lastEventId: header(req, 'last-event-id') });
  if (side.requests.length > 1) return void res.writeHead(204).end();
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
  res.flushHeaders();
  void (async () => {
    // A client reads once the headers are in: bytes sent before it does would reach it as one read.
    if (run.cuts.length > 0) await sleep(20);
    let from = 0;
    for (const cut of [...run.cuts, run.bytes.length]) {
      if (res.destroyed) return;
      if (cut > from) res.write(run.bytes.subarray(from, cut));
      from = cut;
      if (cut < run.bytes.length) await sleep(run.gap);
    }
    res.end(() => (side.endedAt = Date.now()));
  })();
});

interface OracleResult {
  native: { events: Log['events']; timedOut: boolean };
  ours: { events: Log['events']; timedOut: boolean; reads: number };
}

/**
 * Runs `names` in the page, `concurrency` at a time: for each, a native EventSource and ours on
 * the run's endpoints, until both are CLOSED (the 204 that answers their reconnection).
 */
async function runOracle(page: Page, names: string[], concurrency: number): Promise<Record<string, OracleResult>> {
  return bounded(
    page.evaluate(
      async ({ names, types, concurrency }) => {
        const w = window as unknown as W;
        // Our client's fetch, counting the reads of the stream: proof that the cuts arrived apart.
        const counting = (reads: { count: number }): typeof fetch => async (input, init) => {
          const response = await fetch(input, init);
          if (response.status !== 200 || response.body === null) return response;
          const body = response.body.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, controller) {
                reads.count++;
                controller.enqueue(chunk);
              },
            }),
          );
          return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
        };
        const one = (name: string, kind: 'native' | 'ours'): Promise<{ events: Log['events']; timedOut: boolean; reads: number }> =>
          new Promise((resolve) => {
            const url = `/oracle/${name}/${kind}`;
            const reads = { count: 0 };
            const source = kind === 'native' ? new window.EventSource(url) : new w.SseClient(url, { fetch: counting(reads) });
            const events: Log['events'] = [];
            for (const type of types) {
              source.addEventListener(type, (event) => {
                const { data, lastEventId, origin } = event as MessageEvent<string>;
                events.push({ type: event.type, data, lastEventId, origin });
              });
            }
            const timer = setTimeout(() => {
              source.close();
              resolve({ events, timedOut: true, reads: reads.count });
              // Generous: a byte-per-chunk run of a long stream, three at once, on a loaded CI machine.
            }, 15_000);
            source.addEventListener('error', () => {
              if (source.readyState !== 2) return;
              clearTimeout(timer);
              resolve({ events, timedOut: false, reads: reads.count });
            });
          });
        const results: Record<string, OracleResult> = {};
        const queue = [...names];
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
              const [native, ours] = await Promise.all([one(name, 'native'), one(name, 'ours')]);
              results[name] = { native: { events: native.events, timedOut: native.timedOut }, ours };
            }
          }),
        );
        return results;
      },
      { names, types: TYPES, concurrency },
    ),
    // Each run is bounded in the page (15 s); this bounds the whole.
    20_000 + names.length * 1000,
    `${names.length} oracle runs`,
  );
}

let oracleNames = 0;
function addRun(run: OracleRun): string {
  const name = `r${++oracleNames}`;
  oracleRuns.set(name, run);
  return name;
}

/** Latin-1 (as Node reads header bytes) shown as the UTF-8 it may hold. */
const shown = (value: string | undefined): string => (value === undefined ? '(none)' : JSON.stringify(Buffer.from(value, 'latin1').toString('utf8')));

/** Asserts that ours did what the native one did on `name`: same events, same Last-Event-ID on the reconnection. */
function sameAsNative(name: string, what: string, result: OracleResult | undefined): void {
  assert.ok(result !== undefined, `${what}: no result`);
  assert.equal(result.native.timedOut, false, `${what}: the native EventSource closed after the 204`);
  assert.equal(result.ours.timedOut, false, `${what}: ours closed after the 204`);
  assert.deepEqual(result.ours.events, result.native.events, `${what}: the same events`);
  const native = oracleSides.get(`${name}/native`)!;
  const ours = oracleSides.get(`${name}/ours`)!;
  assert.equal(native.requests.length, 2, `${what}: the native one reconnected once`);
  assert.equal(ours.requests.length, 2, `${what}: ours reconnected once`);
  assert.equal(shown(ours.requests[1]!.lastEventId), shown(native.requests[1]!.lastEventId), `${what}: the same Last-Event-ID on the reconnection`);
}

test("the parser agrees with Chromium's EventSource: events, lastEventId, Last-Event-ID, for every kind of line and chunk split", async (t) => {
  const chrome = await chromium(t);
  if (chrome === undefined) return;
  const context = await chrome.newContext();
  try {
    const page = await openPage(context);
    const started = Date.now();

    // Whole streams, then every byte a chunk of its own.
    const whole = Object.entries(STREAMS).map(([stream, data]) => ({ stream, name: addRun({ bytes: data, cuts: [], gap: 0 }) }));
    const perByte = Object.entries(STREAMS).map(([stream, data]) => ({
      stream,
      name: addRun({ bytes: data, cuts: Array.from({ length: data.length - 1 }, (_, i) => i + 1), gap: 2 }),
    }));
    let results = await runOracle(page, [...whole, ...perByte].map((run) => run.name), 3);
    for (const { stream, name } of whole) sameAsNative(name, `${stream}, whole`, results[name]);
    for (const { stream, name } of perByte) sameAsNative(name, `${stream}, a byte per chunk`, results[name]);
    const fields = results[whole[0]!.name]!.native.events.length;
    assert.ok(fields >= 15, `the fields stream dispatched ${fields} events`);

    // Every offset, in a few runs: run j of a stream cuts at every offset ≡ j (mod STRIDE).
    const STRIDE = 6;
    const strided: Array<{ stream: string; j: number; name: string; cuts: number }> = [];
    for (const [stream, data] of Object.entries(STREAMS)) {
      for (let j = 0; j < STRIDE; j++) {
        const cuts = Array.from({ length: data.length }, (_, at) => at).filter((at) => at > 0 && at % STRIDE === j);
        strided.push({ stream, j, cuts: cuts.length, name: addRun({ bytes: data, cuts, gap: 6 }) });
      }
    }
    // Two chunks, one cut, at every offset next to a CR or an LF of the fields stream.
    const fieldsData = STREAMS.fields!;
    const twoChunks: Array<{ at: number; name: string }> = [];
    for (let at = 1; at < fieldsData.length; at++) {
      const breakAt = (i: number): boolean => fieldsData[i] === 0x0d || fieldsData[i] === 0x0a;
      if (breakAt(at - 1) || breakAt(at)) twoChunks.push({ at, name: addRun({ bytes: fieldsData, cuts: [at], gap: 25 }) });
    }
    results = await runOracle(page, strided.map((run) => run.name), 3);
    Object.assign(results, await runOracle(page, twoChunks.map((run) => run.name), 3));
    let reads = 0;
    let chunks = 0;
    for (const { stream, j, name, cuts } of strided) {
      sameAsNative(name, `${stream} cut at every offset ≡ ${j} (mod ${STRIDE})`, results[name]);
      reads += results[name]!.ours.reads;
      chunks += cuts + 1;
    }
    let apart = 0;
    for (const { at, name } of twoChunks) {
      sameAsNative(name, `fields cut at ${at}`, results[name]);
      if (results[name]!.ours.reads >= 2) apart++;
    }
    // The cuts reached the client apart, most of them (a busy page reads two at once now and
    // then): the splits were exercised, not merged on the way.
    assert.ok(reads >= chunks * 0.75, `${reads} reads for ${chunks} chunks`);
    assert.ok(apart >= twoChunks.length * 0.75, `${apart} of ${twoChunks.length} two-chunk runs read apart`);
    t.diagnostic(`${whole.length} streams whole and a byte per chunk; ${strided.length} strided runs (${chunks} chunks, ${reads} reads by ours); ${twoChunks.length} two-chunk runs (${apart} read apart): same as native; ${Date.now() - started} ms`);
  } finally {
    await context.close();
  }
});

test("the reconnection time: retry fields read as Chromium's EventSource reads them, whole or cut inside the field", async (t) => {
  const chrome = await chromium(t);
  if (chrome === undefined) return;
  const context = await chrome.newContext();
  try {
    const page = await openPage(context);
    const runs: Array<{ what: string; name: string }> = [];
    for (const [stream, data] of Object.entries(RETRY_STREAMS)) {
      runs.push({ what: `${stream}, whole`, name: addRun({ bytes: data, cuts: [], gap: 0 }) });
      // Cut inside the first retry line: a parser that took half a line would read "retry: 4".
      const end = data.indexOf('\n');
      for (let at = 'retry: '.length; at < end; at++) runs.push({ what: `${stream} cut at ${at}`, name: addRun({ bytes: data, cuts: [at], gap: 5 }) });
    }
    const results = await runOracle(page, runs.map((run) => run.name), 2);
    const gaps: string[] = [];
    for (const { what, name } of runs) {
      sameAsNative(name, what, results[name]);
      // From the end of the stream to the reconnection, at the server.
      const gap = (kind: string): number => {
        const side = oracleSides.get(`${name}/${kind}`)!;
        return side.requests[1]!.at - side.endedAt!;
      };
      const native = gap('native');
      const ours = gap('ours');
      gaps.push(`${what}: native ${native}, ours ${ours}`);
      // The native one waits the reconnection time; ours 1 to 1.5 times it (docs/client.md). The
      // server stamps the end after it has written it, so a client may seem early by a few tens of
      // ms; what matters is 400, not the default 1000 (nor 0).
      assert.ok(native >= 300 && native < 1000, `${what}: native reconnected after ${native} ms: the oracle read 400`);
      assert.ok(ours >= 300 && ours < 1000, `${what}: ours reconnected after ${ours} ms (native ${native}): 400 to 600 expected`);
    }
    t.diagnostic(`ms from the end of the stream to the reconnection: ${gaps.join('; ')}`);
  } finally {
    await context.close();
  }
});
