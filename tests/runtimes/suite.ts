/**
 * The tests that bun.test.ts and deno.test.ts share: the library served by the runtime's own
 * server (fixtures/app.mjs under Bun.serve or Deno.serve) and read from Node, and serve-sse/client
 * running under the runtime against a Node server.
 */
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import {
  assertBuilt,
  fetchJson,
  findRuntime,
  haveRuntime,
  openStream,
  poll,
  runFixture,
  sleep,
  sseServer,
  startFixture,
  type Fixture,
  type Runtime,
  type RuntimeName,
} from './runtime.js';

interface Status {
  openedAt: number;
  abortedAt: number | null;
  closed: boolean;
  requestSignalAborted: boolean | null;
  requestSignalAbortedAt: number | null;
}

interface Stats {
  connections: number;
  published: number;
  delivered: number;
  replayed: number;
}

export interface Suite {
  runtime: Runtime | undefined;
  /** The server fixture, once before() started it (undefined when the runtime is missing). */
  fixture(): Fixture | undefined;
  /** Whether a test can go on (fails or skips it when the runtime is missing). */
  ready(t: TestContext, what: string): boolean;
}

/** Starts the server fixture for the file (`flags` for the runtime), and stops it (by PID) after. */
export function serverSuite(name: RuntimeName, script: string, flags: string[] = []): Suite {
  const runtime = findRuntime(name);
  let fixture: Fixture | undefined;
  before(async () => {
    if (runtime === undefined) return;
    assertBuilt();
    process.stderr.write(`${name}: ${runtime.bin} (${runtime.version}) ${flags.join(' ')}\n`);
    fixture = await startFixture(runtime, script, flags);
  });
  after(async () => {
    const stderr = fixture?.stderr() ?? '';
    await fixture?.stop();
    // The app logs library warnings and errors to stderr: none is expected.
    assert.doesNotMatch(stderr, /\[(error|warn)\]/, `the fixture logged:\n${stderr}`);
  });
  return {
    runtime,
    fixture: () => fixture,
    ready: (t, what) => haveRuntime(t, name, runtime, what),
  };
}

let gates = 0;

/** `label` names the runtime (and its flags, if any) in the tests' names. */
export function defineServerTests(label: string, suite: Suite): void {
  const server = (): Fixture => suite.fixture()!;
  const stats = (): Promise<Stats> => fetchJson<Stats>(`${server().url}/stats`);
  const publish = async (topic: string, data: string, event?: string): Promise<string> => {
    const query = `topic=${encodeURIComponent(topic)}${event === undefined ? '' : `&event=${encodeURIComponent(event)}`}`;
    return (await fetchJson<{ id: string }>(`${server().url}/publish?${query}`, { method: 'POST', body: data })).id;
  };

  test(`${label}: serveSse(writer).fetch answers 200 with the library's headers, and events leave one by one`, { timeout: 20_000 }, async (t) => {
    if (!suite.ready(t, 'serveSse(writer).fetch')) return;
    const gate = `g${++gates}`;
    const reader = await openStream(`${server().url}/stepped?gate=${gate}`);
    t.after(() => reader.leave());
    assert.equal(reader.res.statusCode, 200);
    const headers = reader.res.headers;
    assert.equal(headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(headers['cache-control'], 'no-store, no-cache, must-revalidate, post-check=0, pre-check=0, no-transform');
    assert.equal(headers['x-accel-buffering'], 'no');
    // The opening comment goes out at once, before any event.
    await reader.until(() => reader.comments.length > 0, 5000, 'the opening comment');
    await reader.until(() => reader.events.length > 0, 5000, 'the first event');
    // The writer sends the second event only once the gate opens, which is after the first event
    // reached Node: so it was not held back in a buffer.
    assert.deepEqual(
      reader.events.map(({ event, id, data }) => ({ event, id, data })),
      [{ event: 'step', id: '1', data: 'first' }],
    );
    const released = performance.now();
    await fetchJson(`${server().url}/release?gate=${gate}`, { method: 'POST' });
    await reader.until(() => reader.events.length > 1, 5000, 'the second event');
    const latency = Math.round(reader.events[1]!.at - released);
    assert.deepEqual(
      reader.events.map(({ event, id, data }) => ({ event, id, data })),
      [
        { event: 'step', id: '1', data: 'first' },
        { event: 'step', id: '2', data: 'second' },
      ],
    );
    // The writer returned: the stream ends, cleanly.
    await reader.until(() => reader.ended, 5000, 'the end of the stream');
    assert.equal(reader.complete, true, 'the response ended cleanly');
    t.diagnostic(`second event ${latency} ms after the release request was sent`);
  });

  test(`${label}: the client going away aborts stream.signal, and the hub forgets the connection`, { timeout: 20_000 }, async (t) => {
    if (!suite.ready(t, 'stream.signal on disconnect')) return;
    const reader = await openStream(`${server().url}/watched?name=leaver`);
    await reader.until(() => reader.events.length > 0, 5000, 'the hello event');
    const left = performance.now();
    reader.leave();
    const status = await poll(async () => {
      const all = await fetchJson<Record<string, Status>>(`${server().url}/status`);
      return all.leaver?.abortedAt === null ? undefined : all.leaver;
    }, 3000, 'stream.signal to abort after the client left');
    const signalMs = Math.round(performance.now() - left);
    assert.equal(status.closed, true, 'stream.closed is true once signal aborted');

    const before = (await stats()).connections;
    const hubReader = await openStream(`${server().url}/hub?topic=leaving`);
    await poll(async () => ((await stats()).connections === before + 1 ? true : undefined), 3000, 'the hub to count the subscriber');
    const hubLeft = performance.now();
    hubReader.leave();
    await poll(async () => ((await stats()).connections === before ? true : undefined), 3000, "the hub's connection count to go back");
    assert.equal(before, 0, 'no other stream is open on the hub');
    t.diagnostic(
      `stream.signal aborted ${signalMs} ms after the client left (request.signal aborted by then: ${status.requestSignalAborted}); ` +
        `hub connections back to 0 in ${Math.round(performance.now() - hubLeft)} ms`,
    );
  });

  test(`${label}: a hub subscribes, publishes and delivers; ids on the wire are publish's`, { timeout: 20_000 }, async (t) => {
    if (!suite.ready(t, 'createHub / hub.handler().fetch')) return;
    const before = await stats();
    const reader = await openStream(`${server().url}/hub?topic=news`);
    t.after(() => reader.leave());
    assert.equal(reader.res.statusCode, 200);
    assert.equal(reader.res.headers['content-type'], 'text/event-stream; charset=utf-8');
    await poll(async () => ((await stats()).connections === before.connections + 1 ? true : undefined), 3000, 'the subscription');
    const first = await publish('news', 'hello', 'headline');
    await publish('sport', 'not for news');
    const second = await publish('news', 'line one\nline two');
    await reader.until(() => reader.events.length >= 2, 5000, 'two news events');
    assert.deepEqual(
      reader.events.map(({ event, id, data }) => ({ event, id, data })),
      [
        { event: 'headline', id: first, data: 'hello' },
        { event: undefined, id: second, data: 'line one\nline two' },
      ],
    );
    const after = await stats();
    assert.equal(after.published - before.published, 3);
    assert.equal(after.delivered - before.delivered, 2);
  });

  test(`${label}: a hub replays what a client missed after Last-Event-ID, then goes live`, { timeout: 20_000 }, async (t) => {
    if (!suite.ready(t, 'hub replay')) return;
    const ids = [await publish('replay', 'r1'), await publish('replay', 'r2'), await publish('replay', 'r3')];
    const before = await stats();
    const reader = await openStream(`${server().url}/hub?topic=replay`, { 'last-event-id': ids[0]! });
    t.after(() => reader.leave());
    await reader.until(() => reader.events.length >= 2, 5000, 'the replay');
    await poll(async () => ((await stats()).connections === before.connections + 1 ? true : undefined), 3000, 'the subscription');
    ids.push(await publish('replay', 'r4'));
    await reader.until(() => reader.events.length >= 3, 5000, 'the live event');
    assert.deepEqual(
      reader.events.map(({ id, data }) => ({ id, data })),
      [
        { id: ids[1], data: 'r2' },
        { id: ids[2], data: 'r3' },
        { id: ids[3], data: 'r4' },
      ],
    );
    assert.equal((await stats()).replayed - before.replayed, 2);
  });

  test(`${label}: hub.close({ retry }) sends the retry hint and ends every open stream`, { timeout: 20_000 }, async (t) => {
    if (!suite.ready(t, 'hub.close()')) return;
    const readers = await Promise.all([openStream(`${server().url}/doomed?topic=d`), openStream(`${server().url}/doomed?topic=d&topic=e`)]);
    t.after(() => readers.forEach((reader) => reader.leave()));
    await poll(async () => ((await fetchJson<Stats>(`${server().url}/doomed/stats`)).connections === 2 ? true : undefined), 3000, 'two subscribers');
    const closing = performance.now();
    const { ms, stats: closed } = await fetchJson<{ ms: number; stats: Stats }>(`${server().url}/doomed/close?retry=2500`, { method: 'POST' });
    for (const reader of readers) {
      await reader.until(() => reader.ended, 5000, 'the end of the stream');
      assert.equal(reader.retry, 2500, 'the retry hint came before the end');
      assert.equal(reader.complete, true, 'the stream ended cleanly, not cut');
    }
    assert.equal(closed.connections, 0);
    // close() resolves once the clients are gone; it waits up to its 5 s timeout (then cuts and
    // warns) only for clients that do not read: these do.
    assert.ok(ms < 2000, `hub.close() took ${ms} ms`);
    t.diagnostic(`hub.close() resolved in ${ms} ms; streams ended ${Math.round(Math.max(...readers.map((r) => r.endedAt!)) - closing)} ms after the request`);
  });
}

/**
 * serve-sse/client under the runtime, against a Node server written by hand (independent of the
 * library): the first connection gets event 1 and is then cut; the client must come back with
 * Last-Event-ID: 1 and get event 2, after which the fixture calls close() and its process must
 * exit on its own.
 */
export function defineClientTest(name: RuntimeName, runtime: Runtime | undefined): void {
  test(`${name}: serve-sse/client receives, reconnects with Last-Event-ID after a cut, and close() lets the process exit`, { timeout: 30_000 }, async (t) => {
    if (!haveRuntime(t, name, runtime, 'serve-sse/client')) return;
    assertBuilt();
    const requests: Array<{ lastEventId: string | undefined; accept: string | undefined; closedAt?: number }> = [];
    const { origin } = await sseServer(
      t,
      (req, res) => {
        const record: (typeof requests)[number] = { lastEventId: req.headers['last-event-id'] as string | undefined, accept: req.headers.accept };
        requests.push(record);
        res.on('close', () => (record.closedAt = performance.now()));
        if (requests.length === 1) {
          res.write('retry: 100\n\nid: 1\ndata: one\n\n');
          // The server drops the connection, mid-stream.
          setTimeout(() => res.destroy(), 100);
        } else {
          res.write(`id: ${requests.length}\ndata: ${requests.length === 2 ? 'two' : 'again'}\n\n`);
        }
      },
      { 'cache-control': 'no-store' },
    );
    const url = `${origin}/events`;
    const run = await runFixture(runtime, 'client.mjs', [url], 15_000);
    const lines = run.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const exitedAt = performance.now();
    assert.equal(run.code, 0, `the client fixture exited with ${run.code ?? run.signal}\n${run.stderr}`);
    assert.equal(run.stderr, '', 'nothing on stderr');
    const [start, ...seen] = lines;
    assert.equal(start?.type, 'start');
    assert.deepEqual(seen, [
      { type: 'open', readyState: 1 },
      { type: 'message', data: 'one', lastEventId: '1', readyState: 1 },
      // The cut: a network error, so it reconnects (status undefined, CONNECTING).
      { type: 'error', readyState: 0 },
      { type: 'open', readyState: 1 },
      { type: 'message', data: 'two', lastEventId: '2', readyState: 1 },
      { type: 'closed', readyState: 2 },
    ]);
    assert.equal(requests.length, 2, 'one reconnection, and none after close()');
    assert.equal(requests[0]!.lastEventId, undefined);
    assert.equal(requests[1]!.lastEventId, '1', 'the reconnection resumes from the last id');
    assert.equal(requests[1]!.accept, 'text/event-stream');
    // close() aborted the fetch: the server saw the connection go, by the time the process exited.
    await poll(async () => (requests[1]!.closedAt === undefined ? undefined : true), 2000, 'the server to see the client close');
    assert.ok(requests[1]!.closedAt! <= exitedAt + 2000);
    t.diagnostic(`client run took ${run.ms} ms (process start to exit); Web Locks + BroadcastChannel sharing path: ${String(start?.shares)}`);
  });
}
