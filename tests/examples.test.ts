/** The examples run as users run them, and are read by a real client (the `eventsource` package). */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { connect as http2Connect } from 'node:http2';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { EventSource } from 'eventsource';
import { openEvents, responseEvents, streamEvents } from './helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const children: ChildProcess[] = [];

after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
});

interface Started {
  url: string;
  child: ChildProcess;
  stderr: () => string;
}

/** Starts `node <script>` on a free loopback port and resolves once it prints its URL. */
function start(script: string, timeout = 10_000): Promise<Started> {
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`${script} printed no URL within ${timeout} ms; stderr: ${stderr}`)), timeout);
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const url = /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url !== undefined) {
        clearTimeout(timer);
        resolve({ url, child, stderr: () => stderr });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code}) before listening; stderr: ${stderr}`));
    });
  });
}

interface Received {
  id: string;
  data: string;
}

/** Reads `count` events of type `type` from `url` with the `eventsource` client, then closes it. */
function readEvents(url: string, type: string, count: number, timeout = 10_000): Promise<Received[]> {
  const source = new EventSource(url);
  const received: Received[] = [];
  return new Promise<Received[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${received.length} of ${count} ${type} events within ${timeout} ms`)), timeout);
    source.addEventListener(type, (event) => {
      received.push({ id: event.lastEventId, data: String(event.data) });
      if (received.length === count) {
        clearTimeout(timer);
        resolve(received);
      }
    });
  }).finally(() => source.close());
}

/** Stops an example and checks it had nothing to say on stderr. */
async function stop({ child, stderr }: Started): Promise<void> {
  // Give the server a moment to see the last client leave: that must not log an error.
  await new Promise((resolve) => setTimeout(resolve, 200));
  child.kill('SIGTERM');
  await once(child, 'exit', { signal: AbortSignal.timeout(5_000) });
  assert.equal(stderr(), '', 'nothing on stderr');
}

/** The framework examples an EventSource can read: what each streams, checked on its first two events. */
const FRAMEWORKS: Array<{ script: string; type: string; check: (events: Received[]) => void }> = [
  {
    script: 'examples/express.mjs',
    type: 'time',
    check: (events) => events.forEach((e) => assert.ok(!Number.isNaN(Date.parse(e.data)), `${e.data} is a time`)),
  },
  {
    script: 'examples/fastify.mjs',
    type: 'greeting',
    check: (events) => assert.deepEqual(events, [{ id: '1', data: 'hello ada, #1' }, { id: '2', data: 'hello ada, #2' }]),
  },
  {
    script: 'examples/hono.mjs',
    type: 'countdown',
    check: (events) => assert.deepEqual(events, [{ id: '10', data: '10' }, { id: '9', data: '9' }]),
  },
  {
    script: 'examples/connect.mjs',
    type: 'update',
    check: (events) => assert.equal(JSON.parse(events[1]!.data).version, JSON.parse(events[0]!.data).version + 1),
  },
];

for (const { script, type, check } of FRAMEWORKS) {
  test(`${script} streams ${type} events to an EventSource`, async () => {
    const started = await start(script);
    check(await readEvents(started.url, type, 2));
    await stop(started);
  });
}

test('examples/koa.mjs: upstream middleware sets the user and a header, then the stream opens', async () => {
  const started = await start('examples/koa.mjs');
  const reader = await openEvents(started.url, { cookie: 'user=ada' });
  assert.equal(reader.res.headers['x-served-by'], 'koa');
  await reader.until(() => reader.events.length === 1, 5000, 'the welcome event');
  assert.deepEqual(reader.events.map((e) => [e.event, e.data]), [['welcome', '{"user":"ada"}']]);
  reader.res.destroy();
  await stop(started);
});

test('examples/mercure-express.mjs: a Mercure subscriber gets the ticks, and a publisher with a token is heard', async () => {
  const started = await start('examples/mercure-express.mjs');
  const reader = await openEvents(started.url);
  await reader.until(() => reader.events.length >= 1, 5000, 'a tick');
  assert.match(reader.events[0]!.id ?? '', /^urn:example:tick:\d+$/);
  const { SignJWT } = await import('jose');
  const token = await new SignJWT({ mercure: { publish: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('change-me-to-32-random-bytes-or-more!!'));
  const hub = new URL(started.url);
  const published = await fetch(`${hub.origin}${hub.pathname}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ topic: 'https://example.com/clock', data: 'from a publisher' }),
  });
  assert.equal(published.status, 200);
  const id = await published.text();
  await reader.until(() => reader.events.some((event) => event.id === id), 5000, 'the publication');
  reader.res.destroy();
});

test('examples/http2.mjs serves an event stream over cleartext HTTP/2', async () => {
  const started = await start('examples/http2.mjs');
  const { origin, pathname } = new URL(started.url);
  const session = http2Connect(origin);
  try {
    const request = session.request({ ':path': pathname });
    const [headers] = (await once(request, 'response')) as [Record<string, string | number>];
    assert.equal(headers[':status'], 200);
    const reader = streamEvents(request);
    await reader.until(() => reader.events.length === 1, 5000, 'the hello event');
    assert.deepEqual(reader.events.map((e) => [e.event, e.data]), [['hello', '{"httpVersion":"2.0"}']]);
  } finally {
    session.destroy();
  }
  await stop(started);
});

test('examples/next-route.mjs: GET, called as Next calls it, streams prices and stops when the request aborts', async () => {
  const route = (await import(pathToFileURL(`${ROOT}examples/next-route.mjs`).href)) as { GET: (request: Request) => Promise<Response>; dynamic: string };
  assert.equal(route.dynamic, 'force-dynamic');
  const client = new AbortController();
  const response = await route.GET(new Request('http://localhost/api/events?symbol=XYZ', { signal: client.signal }));
  assert.equal(response.status, 200);
  const reader = responseEvents(response);
  await reader.until(() => reader.events.length === 1, 5000, 'the first price');
  assert.deepEqual(reader.events.map((e) => [e.event, e.id, e.data]), [['price', '1', '{"symbol":"XYZ","value":41}']]);
  client.abort();
  await reader.until(() => reader.ended, 5000, 'the stream to end once the request is aborted');
});

test('examples/node-http.mjs streams tick events with increasing ids, and resumes after Last-Event-ID', async () => {
  const started = await start('examples/node-http.mjs');
  assert.deepEqual(await readEvents(started.url, 'tick', 2), [
    { id: '1', data: '{"count":1}' },
    { id: '2', data: '{"count":2}' },
  ]);
  // An EventSource cannot set Last-Event-ID on its first connection; the query parameter stands in.
  assert.deepEqual(await readEvents(`${started.url}?lastEventId=41`, 'tick', 1), [{ id: '42', data: '{"count":42}' }]);
  await stop(started);
});

test('examples/hub.mjs: events flow, and SIGTERM with streams open sends retry, ends them, and exits 0', async () => {
  const { url, child, stderr } = await start('examples/hub.mjs');
  const reader = await openEvents(url);
  await reader.until(() => reader.events.length >= 1, 5000, 'a time event');
  assert.equal(reader.events[0]!.event, 'time');
  assert.ok(reader.events[0]!.id, 'hub events carry ids');
  const exited = once(child, 'exit', { signal: AbortSignal.timeout(5_000) });
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, 'the process exits by itself, streams and all');
  await reader.until(() => reader.ended, 5000, 'the stream to end');
  assert.equal(reader.retry, 5000);
  assert.equal(stderr(), '', 'nothing on stderr');
});
