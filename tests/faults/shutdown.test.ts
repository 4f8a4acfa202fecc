/**
 * The hub server's shutdown, where it meets the world: a backplane still opening, a drain that
 * lasts (a client that reads nothing), and publishers in full flight. Whatever arrives while the
 * hub drains gets an answer that says so (503, or a retry hint for event streams), never a reset.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, request as httpRequest } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { openEvents, waitFor } from '../helpers.js';
import { closeAll, PUBLISHER_KEY, publishJson, publisherToken, rawExchange, send, startHub, type TestHub } from '../server/hub-helpers.js';

after(closeAll);

/** A TCP listener that accepts connections and never says a word: Redis black-holed. */
async function blackHole(): Promise<{ url: string; close(): Promise<void> }> {
  const held: Socket[] = [];
  const server = createServer((socket) => {
    socket.on('error', () => {});
    held.push(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    close: async () => {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('shutdown while the backplane is still opening', () => {
  test('Redis black-holed: 20 waiting subscribers each get the retry hint and a clean end; close() is quick', async () => {
    const redis = await blackHole();
    try {
      const hub = await startHub({ redis: redis.url, shutdownRetry: 1000, shutdownTimeout: 6000 });
      const readers = await Promise.all(Array.from({ length: 20 }, () => openEvents(`${hub.url}/events?topic=a`)));
      await waitFor(() => hub.logs.filter((line) => line.msg === 'subscriber connected').length === 20, 5000, 'the 20 to be admitted');
      const started = Date.now();
      await hub.close();
      const took = Date.now() - started;
      const hinted = readers.filter((reader) => reader.retry !== undefined && reader.retry >= 1000 && reader.retry < 2000).length;
      await Promise.all(readers.map((reader) => reader.until(() => reader.ended, 1000).catch(() => {})));
      const clean = readers.filter((reader) => reader.ended && reader.res.complete).length;
      assert.deepEqual({ hinted, clean }, { hinted: 20, clean: 20 }, `of 20 subscribers (close() took ${took} ms)`);
      assert.ok(took < 3000, `close() took ${took} ms; the shutdown timeout is 6000`);
    } finally {
      await redis.close();
    }
  });
});

/**
 * A subscriber that reads nothing, and enough published to it to fill the socket buffers between
 * us: its stream cannot end until the shutdown timeout cuts it, so the drain lasts that long.
 */
async function stuckSubscriber(hub: TestHub): Promise<Socket> {
  const serverSockets: Socket[] = [];
  hub.server.on('connection', (socket: Socket) => serverSockets.push(socket));
  const client = connect(Number(new URL(hub.url).port), '127.0.0.1');
  client.on('error', () => {});
  await once(client, 'connect');
  // No 'data' listener: the socket stays paused and its receive buffer fills.
  client.write('GET /events?topic=big HTTP/1.1\r\nHost: hub\r\nAccept: text/event-stream\r\n\r\n');
  await waitFor(() => hub.hub.stats().connections === 1, 5000, 'the subscriber to join');
  const serverSide = serverSockets.find((socket) => socket.remotePort === client.localPort);
  assert.ok(serverSide !== undefined);
  const token = await publisherToken(['big']);
  // Small enough that what is left in Node's buffer stays under the slow-client limit (64 KiB):
  // the stream is stuck, not evicted.
  const data = 'x'.repeat(32 * 1024);
  for (let n = 0; n < 2000 && serverSide.writableLength === 0; n++) {
    assert.equal((await publishJson(hub, token, { topic: 'big', data })).status, 200);
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.ok(serverSide.writableLength > 0, 'the buffers are full');
  assert.equal(hub.hub.stats().evicted, 0);
  return client;
}

describe('the drain', () => {
  test('while the streams end, the listener stays open: /healthz and /readyz 503, /events a retry hint, /publish 503; then the port closes', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, shutdownRetry: 1500, shutdownTimeout: 1500 });
    assert.equal((await send(`${hub.url}/readyz`)).status, 200, 'ready before the shutdown');
    const stuck = await stuckSubscriber(hub);
    const token = await publisherToken(['*']);

    const started = Date.now();
    const closed = hub.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const health = await send(`${hub.url}/healthz`);
    assert.equal(health.status, 503);
    assert.match(health.body, /shutting down/);
    const ready = await send(`${hub.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(ready.body, /shutting down/);
    const late = await openEvents(`${hub.url}/events?topic=a`);
    assert.equal(late.res.statusCode, 200, 'a 200 stream, since EventSource gives up for good after an error status');
    await late.until(() => late.ended);
    assert.ok(late.retry! >= 1500, `retry ${late.retry}`);
    assert.ok(late.res.complete, 'ended cleanly');
    const publish = await publishJson(hub, token, { topic: 'a', data: 'late' });
    assert.equal(publish.status, 503);
    assert.equal(publish.headers.connection, 'close');
    assert.match(publish.body, /shutting down/);
    assert.ok(Date.now() - started < 1500, 'all of that during the drain');

    await closed;
    const took = Date.now() - started;
    // The stuck client holds the drain until the shutdown timeout (less the part kept for requests in progress).
    assert.ok(took >= 1300 && took < 3000, `the drain took ${took} ms`);
    const refused = await rawExchange(hub.url, 'GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n', { waitMs: 1000 });
    assert.equal(refused.error, 'ECONNREFUSED', 'the port is closed after the drain');
    stuck.destroy();
  });
});

describe('/readyz', () => {
  test('200 while serving; 503 while the backplane is disconnected, while /healthz stays 200', async () => {
    const hub = await startHub();
    const ready = await send(`${hub.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(ready.body, 'ready\n');
    // A backplane that lost its connection: hub.stats() says so.
    const stats = hub.hub.stats.bind(hub.hub);
    hub.hub.stats = () => ({ ...stats(), backplaneConnected: false });
    const outage = await send(`${hub.url}/readyz`);
    assert.equal(outage.status, 503);
    assert.match(outage.body, /backplane is disconnected/);
    assert.equal(outage.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal((await send(`${hub.url}/healthz`)).status, 200, 'liveness: a Redis outage must not get every instance restarted');
    assert.equal((await send(`${hub.url}/readyz`, { method: 'HEAD' })).status, 503);
    assert.equal((await send(`${hub.url}/readyz`, { method: 'POST' })).status, 405);
  });
});

type Outcome = { kind: 'published'; id: string } | { kind: 'refused'; status: number; body: string; connection: string | undefined } | { kind: 'error'; code: string };

/** One POST /publish; the outcome, whatever it is. */
function attempt(hub: TestHub, token: string, agent: Agent | false, n: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const body = JSON.stringify({ topic: 'flight', data: `n${n}` });
    const req = httpRequest(
      `${hub.url}/publish`,
      { method: 'POST', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve(res.statusCode === 200 ? { kind: 'published', id: text } : { kind: 'refused', status: res.statusCode ?? 0, body: text, connection: res.headers.connection }),
        );
        res.on('error', (error: NodeJS.ErrnoException) => resolve({ kind: 'error', code: error.code ?? error.message }));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ kind: 'error', code: error.code ?? error.message }));
    req.end(body);
  });
}

describe('publishes in flight at shutdown', () => {
  test('publishers over keep-alive and fresh connections: each publish gets its 200 and id or a 503 text answer, never a reset', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, shutdownTimeout: 3000 });
    const token = await publisherToken(['flight']);
    let closed = false;
    let n = 0;
    // Four publishers reuse one keep-alive connection each, four open a fresh one per publish. Each
    // goes on until the hub tells it to go elsewhere (503), as a publisher behind a load balancer would.
    const agents = [...Array.from({ length: 4 }, () => new Agent({ keepAlive: true, maxSockets: 1 })), false, false, false, false] as const;
    const loops = agents.map(async (agent) => {
      const outcomes: Outcome[] = [];
      while (!closed) {
        const outcome = await attempt(hub, token, agent, ++n);
        outcomes.push(outcome);
        if (outcome.kind !== 'published') break;
      }
      return outcomes;
    });
    await waitFor(() => n > 200, 5000, 'publishers in full flight');
    // A publish whose body is half there when the shutdown begins.
    const body = JSON.stringify({ topic: 'flight', data: 'half' });
    const halfway = rawExchange(
      hub.url,
      [`POST /publish HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`, body.slice(10)],
      { pauseMs: 150, waitMs: 2000 },
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    await hub.close();
    closed = true;
    const results = await Promise.all(loops);
    for (const agent of agents) if (agent !== false) agent.destroy();

    const all = results.flat();
    const errors = all.filter((outcome) => outcome.kind === 'error');
    const refusals = all.filter((outcome): outcome is Extract<Outcome, { kind: 'refused' }> => outcome.kind === 'refused');
    const published = all.filter((outcome): outcome is Extract<Outcome, { kind: 'published' }> => outcome.kind === 'published');
    assert.deepEqual(errors, [], `no resets: of ${all.length} publishes, ${published.length} published, ${refusals.length} refused`);
    for (const refusal of refusals) {
      assert.equal(refusal.status, 503);
      assert.match(refusal.body, /shutting down/);
      assert.equal(refusal.connection, 'close');
    }
    assert.equal(refusals.length, 8, 'each publisher was told to go elsewhere');
    assert.equal(new Set(published.map((outcome) => outcome.id)).size, published.length, 'each id once');
    for (const outcome of published) assert.match(outcome.id, /^\d+-\d+$/);
    const half = await halfway;
    assert.equal(half.error, undefined, half.received);
    assert.match(half.statusLine ?? '', /^HTTP\/1\.1 (200 OK|503 Service Unavailable)$/, half.received);
  });
});
