/**
 * The hub server and requests Node's parser refuses, or that never complete: each gets Node's own
 * status (400, 408, 431) with a short text body and then a closed socket, never a silent reset,
 * and never an answer injected into a response already under way. And pipelined requests that
 * never got their socket release what they hold (the per-address cap, the response counters).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { get, openEvents, waitFor } from '../helpers.js';
import { closeAll, metric, PUBLISHER_KEY, publisherToken, rawExchange, send, startHub, type RawExchange, type TestHub } from '../server/hub-helpers.js';

after(closeAll);

/** The checks every refusal of a malformed request passes: Node's status, a text body, then the end. */
function assertRefused(answer: RawExchange, statusLine: string, body: RegExp): void {
  assert.equal(answer.error, undefined, `no reset (received ${JSON.stringify(answer.received.slice(0, 200))})`);
  assert.equal(answer.statusLine, statusLine);
  assert.equal(answer.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(answer.headers.connection, 'close');
  const text = answer.headers['transfer-encoding'] === 'chunked' ? dechunk(answer.body) : answer.body;
  if (answer.headers['transfer-encoding'] !== 'chunked') {
    assert.equal(Number(answer.headers['content-length']), Buffer.byteLength(answer.body, 'latin1'), 'the whole body, as announced');
  }
  assert.match(text, body);
  assert.ok(answer.closed, 'the server closes the connection after the answer');
}

/** A chunked body's content (it must be whole: the terminating chunk included). */
function dechunk(raw: string): string {
  let text = '';
  let rest = raw;
  for (;;) {
    const lineEnd = rest.indexOf('\r\n');
    assert.ok(lineEnd !== -1, `a chunk size line in ${JSON.stringify(rest)}`);
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (size === 0) return text;
    text += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
}

const HEAD_TOO_LARGE = /request head is larger than/;

describe('requests the parser refuses', () => {
  const cases: Array<{ name: string; payload: string; statusLine: string; body: RegExp; code: string }> = [
    {
      name: 'a 64 KiB Last-Event-ID',
      payload: `GET /events?topic=a HTTP/1.1\r\nHost: hub\r\nLast-Event-ID: ${'1'.repeat(64 * 1024)}\r\n\r\n`,
      statusLine: 'HTTP/1.1 431 Request Header Fields Too Large',
      body: HEAD_TOO_LARGE,
      code: '431',
    },
    {
      name: '10,000 topic= parameters',
      payload: `GET /events?${Array.from({ length: 10_000 }, (_, i) => `topic=t${i}`).join('&')} HTTP/1.1\r\nHost: hub\r\n\r\n`,
      statusLine: 'HTTP/1.1 431 Request Header Fields Too Large',
      body: HEAD_TOO_LARGE,
      code: '431',
    },
    {
      name: 'a malformed request line',
      payload: 'GARBAGE\r\n\r\n',
      statusLine: 'HTTP/1.1 400 Bad Request',
      body: /malformed request: invalid method/i,
      code: '400',
    },
    {
      name: 'an unknown HTTP version',
      payload: 'GET /healthz HTTP/9.9x\r\nHost: hub\r\n\r\n',
      statusLine: 'HTTP/1.1 400 Bad Request',
      body: /malformed request: invalid HTTP version/i,
      code: '400',
    },
    {
      name: 'both Content-Length and Transfer-Encoding',
      payload: 'POST /publish HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      statusLine: 'HTTP/1.1 400 Bad Request',
      body: /malformed request: .*Transfer-Encoding.*Content-Length/i,
      code: '400',
    },
  ];

  for (const { name, payload, statusLine, body, code } of cases) {
    test(`${name}: ${statusLine.slice(9)} with a text body, then the socket closes; counted in /metrics`, async () => {
      const hub = await startHub();
      assertRefused(await rawExchange(hub.url, payload), statusLine, body);
      const metrics = (await send(`${hub.url}/metrics`)).body;
      assert.equal(metric(metrics, `serve_sse_malformed_requests_total{code="${code}"}`), 1, metrics);
    });
  }

  test('a head that does not arrive within --body-timeout: 408 with a text body, then the socket closes', async () => {
    const hub = await startHub({ bodyTimeout: 300 });
    // An event stream lasts far longer than the timeout: only requests still arriving are timed.
    const stream = await openEvents(`${hub.url}/events?topic=a`);
    const started = Date.now();
    const answer = await rawExchange(hub.url, 'GET /healthz HTTP/1.1\r\nHost: hub\r\n', { waitMs: 3000 });
    assertRefused(answer, 'HTTP/1.1 408 Request Timeout', /request head did not arrive within 300 ms/);
    assert.ok(Date.now() - started < 1500, `answered after ${Date.now() - started} ms`);
    assert.equal(metric((await send(`${hub.url}/metrics`)).body, 'serve_sse_malformed_requests_total{code="408"}'), 1);
    await new Promise((resolve) => setTimeout(resolve, 700 - (Date.now() - started)));
    assert.equal(stream.ended, false, 'the stream is still open');
    assert.equal(hub.hub.stats().connections, 1);
    stream.res.destroy();
  });

  test('garbage in the middle of an open event stream: no answer injected into the stream, the socket closes', async () => {
    const hub = await startHub();
    const { port } = new URL(hub.url);
    const socket = connect(Number(port), '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => {});
    socket.write('GET /events?topic=a HTTP/1.1\r\nHost: hub\r\nAccept: text/event-stream\r\n\r\n');
    await waitFor(() => received.includes('\r\n\r\n') && hub.hub.stats().connections === 1, 5000, 'the stream to open');
    const closed = once(socket, 'close');
    socket.write('GARBAGE\r\n\r\n');
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the socket stayed open')), 3000))]);
    assert.match(received, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(received.match(/HTTP\/1\.1 /g)?.length, 1, `one answer only: ${JSON.stringify(received)}`);
    assert.doesNotMatch(received, /400 Bad Request|malformed/);
    assert.equal(metric((await send(`${hub.url}/metrics`)).body, 'serve_sse_malformed_requests_total{code="400"}'), 1, 'counted, though not answered');
  });

  test('a client that resets mid-head gets nothing (nobody to answer), is not counted, and the server carries on', async () => {
    const hub = await startHub();
    const { port } = new URL(hub.url);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /healthz HTTP/1.1\r\nHost: hub\r\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.resetAndDestroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((await send(`${hub.url}/healthz`)).status, 200);
    const metrics = (await send(`${hub.url}/metrics`)).body;
    assert.doesNotMatch(metrics, /serve_sse_malformed_requests_total\{/);
  });
});

/** Counts the requests the server has been handed, and keeps its sockets, for white-box checks. */
function watch(hub: TestHub): { requests: IncomingMessage[]; responses: ServerResponse[]; sockets: Socket[] } {
  const seen = { requests: [] as IncomingMessage[], responses: [] as ServerResponse[], sockets: [] as Socket[] };
  hub.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    seen.requests.push(req);
    seen.responses.push(res);
  });
  hub.server.on('connection', (socket: Socket) => seen.sockets.push(socket));
  return seen;
}

/** Writes 101 pipelined `GET /events?topic=a` in one go and waits until the server has them all. */
async function pipeline101(hub: TestHub, seen: ReturnType<typeof watch>): Promise<Socket> {
  const { port } = new URL(hub.url);
  const socket = connect(Number(port), '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write('GET /events?topic=a HTTP/1.1\r\nHost: hub\r\nAccept: text/event-stream\r\n\r\n'.repeat(101));
  await waitFor(() => seen.requests.length === 101, 5000, 'the server to parse all 101 requests');
  return socket;
}

describe('pipelined requests that never get their socket', () => {
  test('101 pipelined GET /events, then the socket closes: the address is served again at once, each response counted once', async () => {
    const hub = await startHub({ maxConnectionsPerIp: 100 });
    const seen = watch(hub);
    const socket = await pipeline101(hub, seen);
    assert.equal(seen.responses.filter((res) => res.socket === null).length, 100, '100 responses queued behind the first');
    socket.destroy();

    // Within a second of the hang-up, the same address holds nothing: it may open its 100 again.
    const deadline = Date.now() + 1000;
    let statuses: number[] = [];
    while (Date.now() < deadline) {
      const answers = await Promise.all(Array.from({ length: 100 }, () => get(`${hub.url}/events?topic=a`, { accept: 'text/event-stream' })));
      statuses = answers.map((res) => res.statusCode ?? 0);
      for (const res of answers) res.destroy();
      if (statuses.every((status) => status === 200)) break;
      await waitFor(() => hub.hub.stats().connections === 0 || Date.now() > deadline, 1000);
    }
    const refused = statuses.filter((status) => status !== 200);
    assert.equal(refused.length, 0, `${refused.length} of 100 refused (${[...new Set(refused)].join(', ')}); all should be served`);

    const counted = async (code: string): Promise<number> =>
      metric((await send(`${hub.url}/metrics`)).body, `serve_sse_http_responses_total{endpoint="/events",code="${code}"}`) ?? 0;
    // Each response counted once, when it is over: the 429 among the pipelined ones, and each
    // stream whose head was written by then (the first, the 100 after, and any queued one whose
    // head the library wrote before its client left): 101 to 201, and steady once all are over.
    assert.equal(await counted('429'), 1);
    await waitFor(async () => (await counted('200')) >= 101, 2000, 'the streams to be counted');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const streams = await counted('200');
    assert.ok(streams >= 101 && streams <= 201, `${streams} streams counted`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await counted('200'), streams, 'none counted twice');
  });

  test('… and the hub ends their subscriptions (the library side of the same fix)', async () => {
    const hub = await startHub({ maxConnectionsPerIp: 100 });
    const seen = watch(hub);
    const socket = await pipeline101(hub, seen);
    socket.destroy();
    await waitFor(() => hub.hub.stats().connections === 0, 2000, `the subscriptions to end (now ${hub.hub.stats().connections})`);
  });

  test('a long-lived keep-alive socket gathers no listeners, however many requests it carries', async () => {
    const hub = await startHub();
    const seen = watch(hub);
    const { port } = new URL(hub.url);
    const socket = connect(Number(port), '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => (received += chunk));
    await once(socket, 'connect');
    const counts: number[] = [];
    for (let n = 1; n <= 30; n++) {
      socket.write('GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n');
      await waitFor(() => received.split('HTTP/1.1 200').length - 1 === n, 2000, `answer ${n}`);
      const server = seen.sockets[0]!;
      counts.push(server.listenerCount('close') + server.listenerCount('end') + server.listenerCount('error'));
    }
    socket.destroy();
    assert.equal(new Set(counts.slice(1)).size, 1, `listener counts stay flat: ${counts.join(',')}`);
  });

  test('an event stream opened over a fresh connection still releases its slot when it ends', async () => {
    const hub = await startHub({ maxConnectionsPerIp: 1 });
    const first = await openEvents(`${hub.url}/events?topic=a`);
    assert.equal(first.res.statusCode, 200);
    const refused = await send(`${hub.url}/events?topic=a`);
    assert.equal(refused.status, 429);
    assert.match(refused.body, /too many event streams from 127\.0\.0\.1/);
    first.res.destroy();
    await waitFor(async () => (await send(`${hub.url}/healthz`)).status === 200 && hub.hub.stats().connections === 0);
    const second = await openEvents(`${hub.url}/events?topic=a`);
    assert.equal(second.res.statusCode, 200);
    second.res.destroy();
  });
});

describe('a publish body that stalls', () => {
  const head = (length: number, token: string): string =>
    `POST /publish HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

  test('not all there within --body-timeout: 408 with a text body and Connection: close, then the socket closes', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, bodyTimeout: 300 });
    const token = await publisherToken(['*']);
    const body = JSON.stringify({ topic: 'a', data: 'x'.repeat(100) });
    const started = Date.now();
    // Half the body, then nothing: the client keeps the socket open and says no more.
    const answer = await rawExchange(hub.url, head(Buffer.byteLength(body), token) + body.slice(0, 20), { waitMs: 3000 });
    const took = Date.now() - started;
    assertRefused(answer, 'HTTP/1.1 408 Request Timeout', /the body did not arrive within 300 ms/);
    assert.ok(took >= 280 && took < 1500, `answered after ${took} ms`);
    await waitFor(async () => metric((await send(`${hub.url}/metrics`)).body, 'serve_sse_http_responses_total{endpoint="/publish",code="408"}') === 1);
    assert.equal(hub.hub.stats().published, 0);
  });

  test('a slow body that is all there within the timeout is published', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, bodyTimeout: 1000 });
    const token = await publisherToken(['*']);
    const body = JSON.stringify({ topic: 'a', data: 'slow' });
    const answer = await rawExchange(hub.url, [head(Buffer.byteLength(body), token), body.slice(0, 10), body.slice(10)], { pauseMs: 200, waitMs: 600 });
    assert.equal(answer.statusLine, 'HTTP/1.1 200 OK', answer.received);
    assert.match(answer.body, /\b\d+-\d+\b/, 'the id (in a chunked body)');
  });
});
