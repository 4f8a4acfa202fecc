/** The `cors` option: headers and refusals through real HTTP, then cross-origin EventSource in Chromium. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import { createHub, serveSse, type ServeSseOptions, type SseStream, type StreamWriter } from '../src/index.js';
import { launchChromium } from './chromium.js';
import { get, openEvents, recordingLogger, serverPool, text } from './helpers.js';

const start = serverPool();
const serve = (writer: StreamWriter, options: ServeSseOptions): Promise<string> =>
  start(serveSse(writer, { logger: recordingLogger().logger, ...options }));

const holdOpen = async (_request: unknown, stream: SseStream): Promise<void> => {
  await stream.send({ data: 'hello' });
  if (!stream.closed) await once(stream.signal, 'abort');
};

const APP = 'https://app.example';

/** A CORS preflight, as a fetch-based client with an Authorization header sends it. */
function preflight(url: string, origin: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    import('node:http').then(({ request }) => {
      const req = request(url, {
        method: 'OPTIONS',
        agent: false,
        headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization, last-event-id' },
      });
      req.on('response', resolve).on('error', reject).end();
    }, reject);
  });
}

describe('cors over HTTP', () => {
  test('an allowed origin is echoed with Vary: Origin, and the events flow', async () => {
    const url = await serve(holdOpen, { cors: [APP, 'https://admin.example'] });
    const reader = await openEvents(url, { origin: APP });
    assert.equal(reader.res.statusCode, 200);
    assert.equal(reader.res.headers['access-control-allow-origin'], APP);
    assert.equal(reader.res.headers.vary, 'Origin');
    assert.equal(reader.res.headers['access-control-allow-credentials'], undefined);
    await reader.until(() => reader.events.length === 1, 5000, 'the event');
    reader.res.destroy();
  });

  test('origin: true answers `*` without credentials, and echoes the origin with them', async () => {
    const any = await serve(holdOpen, { cors: true });
    const open = await openEvents(any, { origin: 'https://anyone.example' });
    assert.equal(open.res.headers['access-control-allow-origin'], '*');
    assert.equal(open.res.headers.vary, undefined, 'one answer for every origin');
    open.res.destroy();

    const withCookies = await serve(holdOpen, { cors: { origin: true, credentials: true } });
    const credentialed = await openEvents(withCookies, { origin: 'https://anyone.example' });
    assert.equal(credentialed.res.headers['access-control-allow-origin'], 'https://anyone.example', 'never * with credentials');
    assert.equal(credentialed.res.headers['access-control-allow-credentials'], 'true');
    assert.equal(credentialed.res.headers.vary, 'Origin');
    credentialed.res.destroy();
  });

  test('a predicate decides; a disallowed origin gets a 403 naming it, before onConnect and the writer', async () => {
    let onConnectCalls = 0;
    let writerCalls = 0;
    const url = await serve(() => void writerCalls++, {
      cors: { origin: (origin) => origin.endsWith('.trusted.example') },
      onConnect: () => (onConnectCalls++, [200]),
    });
    const res = await get(url, { origin: 'https://evil.example' });
    assert.equal(res.statusCode, 403);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.equal(await text(res), 'Origin https://evil.example is not allowed to read this event stream\n');
    assert.equal(onConnectCalls, 0);
    assert.equal(writerCalls, 0);
    const allowed = await get(url, { origin: 'https://a.trusted.example' });
    assert.equal(allowed.statusCode, 200);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://a.trusted.example');
    await text(allowed);
  });

  test('a preflight is answered 204 with the requested headers allowed, without running onConnect', async () => {
    let onConnectCalls = 0;
    const url = await serve(holdOpen, { cors: { origin: APP, credentials: true, maxAge: 120 }, onConnect: () => (onConnectCalls++, [200]) });
    const res = await preflight(url, APP);
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal(res.headers['access-control-allow-methods'], 'GET');
    assert.equal(res.headers['access-control-allow-headers'], 'authorization, last-event-id');
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.equal(res.headers['access-control-max-age'], '120');
    assert.equal(res.headers.vary, 'Origin, Access-Control-Request-Headers');
    assert.equal(await text(res), '');
    assert.equal(onConnectCalls, 0);
    assert.equal((await preflight(url, 'https://evil.example')).statusCode, 403);
  });

  test('a refusal from onConnect carries the CORS headers, so the page can read why; Vary is merged', async () => {
    const url = await serve(holdOpen, {
      cors: { origin: APP, credentials: true },
      onConnect: () => ({ status: 401, headers: { vary: 'Cookie', 'content-type': 'application/json' }, body: '{"error":"log in"}' }),
    });
    const res = await get(url, { origin: APP });
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.equal(res.headers.vary, 'Cookie, Origin');
    assert.deepEqual(JSON.parse(await text(res)), { error: 'log in' });
  });

  test('a same-origin request (no Origin header) gets no CORS headers', async () => {
    const url = await serve(holdOpen, { cors: APP });
    const reader = await openEvents(url);
    assert.equal(reader.res.statusCode, 200);
    assert.equal(reader.res.headers['access-control-allow-origin'], undefined);
    reader.res.destroy();
  });

  test('through handler.fetch and a hub handler alike', async () => {
    const viaFetch = await serveSse(() => {}, { cors: APP }).fetch(new Request('http://localhost/', { headers: { origin: APP } }));
    assert.equal(viaFetch.headers.get('access-control-allow-origin'), APP);
    await viaFetch.body?.cancel();
    const refused = await serveSse(() => {}, { cors: APP }).fetch(new Request('http://localhost/', { headers: { origin: 'https://x.example' } }));
    assert.equal(refused.status, 403);

    const hub = createHub({ logger: recordingLogger().logger });
    const url = await start(hub.handler({ cors: APP }));
    const reader = await openEvents(`${url}/?topic=t`, { origin: APP });
    assert.equal(reader.res.headers['access-control-allow-origin'], APP);
    assert.equal((await get(`${url}/?topic=t`, { origin: 'https://x.example' })).statusCode, 403);
    reader.res.destroy();
    await hub.close();
  });

  test('bad option values throw a TypeError naming cors, when the handler is made', () => {
    const bad: unknown[] = [
      null,
      42,
      false,
      '',
      [],
      'https://app.example/',
      'app.example',
      ['https://app.example', 7],
      { origin: 'https://app.example', credentials: 'yes' },
      { origin: 'https://app.example', maxAge: -1 },
      { origins: ['https://app.example'] },
    ];
    for (const cors of bad) {
      assert.throws(() => serveSse(() => {}, { cors: cors as never }), { name: 'TypeError', message: /option cors/ }, `cors: ${JSON.stringify(cors)}`);
    }
  });
});

/** A page that opens a credentialed EventSource to the URL in its `sse` query parameter. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>cors</title><script>
  window.received = [];
  window.errors = 0;
  const source = new EventSource(new URLSearchParams(location.search).get('sse'), { withCredentials: true });
  source.addEventListener('whoami', (event) => window.received.push(event.data));
  source.onerror = () => { window.errors += 1; };
</script>`;

const servePage = (): Promise<string> => start((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE));

describe('cors in Chromium', () => {
  test('a page on another origin reads the stream with credentials; a page on a disallowed origin cannot', async (t) => {
    const allowedPage = await servePage();
    const otherPage = await servePage();
    const origins: Array<string | undefined> = [];
    let writerCalls = 0;
    const sse = await serve(
      async (request, stream) => {
        writerCalls++;
        const cookie = /(?:^|;\s*)session=([^;]*)/.exec((request as IncomingMessage).headers.cookie ?? '')?.[1] ?? 'none';
        await stream.send({ event: 'whoami', data: cookie });
        await stream.send({ event: 'whoami', data: (request as IncomingMessage).headers.origin ?? 'no origin' });
        if (!stream.closed) await once(stream.signal, 'abort');
      },
      {
        cors: { origin: allowedPage, credentials: true },
        onConnect: (request) => {
          origins.push((request as IncomingMessage).headers.origin);
          return (request as IncomingMessage).headers.cookie?.includes('session=') ? [200] : { status: 401, body: 'no session' };
        },
      },
    );

    const browser = await launchChromium(t, 'cross-origin EventSource');
    if (browser === undefined) return;
    try {
      const context = await browser.newContext();
      // Cookies ignore ports: this one belongs to the SSE server's host as much as the page's.
      await context.addCookies([{ name: 'session', value: 's3cret', domain: '127.0.0.1', path: '/' }]);
      const page = await context.newPage();
      page.setDefaultTimeout(10_000);
      await page.goto(`${allowedPage}/?sse=${encodeURIComponent(`${sse}/events`)}`);
      await page.waitForFunction(() => (window as unknown as { received: string[] }).received.length >= 2);
      assert.deepEqual(await page.evaluate(() => (window as unknown as { received: string[] }).received), ['s3cret', allowedPage]);

      const refused = await context.newPage();
      await refused.goto(`${otherPage}/?sse=${encodeURIComponent(`${sse}/events`)}`);
      await refused.waitForFunction(() => (window as unknown as { errors: number }).errors >= 1);
      assert.deepEqual(await refused.evaluate(() => (window as unknown as { received: string[] }).received), []);
      assert.equal(writerCalls, 1, 'the disallowed origin never reached the writer');
      assert.deepEqual(origins, [allowedPage], 'nor onConnect: the origin check came first');
    } finally {
      await browser.close();
    }
  });
});
