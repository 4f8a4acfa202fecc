/**
 * serve-sse under Next.js's own server: the app in this folder (app router, `.js` route files,
 * the library imported as `serve-sse`, as users do) is built with `next build` and served by
 * `next start`; a fetch client reads the stream with eventsource-parser. It checks what only the
 * real server can show: the headers and compression Next applies, that events leave one by one,
 * replay with Last-Event-ID, that one hub is shared by the routes (a globalThis singleton, see
 * lib/hub.js), and that a client going away frees its subscription.
 *
 * The build is the slow part (10 to 20 s on two cores); it goes to a directory of its own
 * (`.next-test-<pid>`, removed afterwards), so concurrent runs never share one.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = fileURLToPath(new URL('.', import.meta.url));
const NEXT = join(ROOT, 'node_modules', 'next', 'dist', 'bin', 'next');
const DIST_DIR = `.next-test-${process.pid}`;
const BUILD_TIMEOUT = 150_000;
const START_TIMEOUT = 20_000;

/** Next's environment: no telemetry (so no network), our distDir, and Next's own NODE_ENV. */
function nextEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NEXT_TELEMETRY_DISABLED: '1', SERVE_SSE_NEXT_DIST_DIR: DIST_DIR };
  delete env.NODE_ENV; // the test runner's would make Next warn; build and start set their own
  delete env.NODE_OPTIONS;
  return env;
}

/** An event stream read through fetch and eventsource-parser, each event stamped on arrival. */
class FetchEvents {
  readonly events: Array<EventSourceMessage & { at: number }> = [];
  readonly comments: string[] = [];
  readonly controller = new AbortController();
  ended = false;
  #wake: () => void = () => {};

  private constructor(readonly response: Response) {}

  static async open(url: string, headers: Record<string, string> = {}): Promise<FetchEvents> {
    const controller = new AbortController();
    const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
    const reader = new FetchEvents(response);
    reader.controller.signal.addEventListener('abort', () => controller.abort());
    void reader.#read();
    return reader;
  }

  async #read(): Promise<void> {
    const parser = createParser({
      onEvent: (event) => this.events.push({ ...event, at: now() }),
      onComment: (comment) => this.comments.push(comment),
    });
    const decoder = new TextDecoder();
    const body = this.response.body!.getReader();
    try {
      for (let chunk = await body.read(); !chunk.done; chunk = await body.read()) {
        parser.feed(decoder.decode(chunk.value, { stream: true }));
        this.#wake();
      }
    } catch {
      // aborted: the client went away
    }
    this.ended = true;
    this.#wake();
  }

  /** Waits until `predicate` holds, or fails after `ms`. */
  async until(predicate: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = performance.now() + ms;
    while (!predicate()) {
      const left = deadline - performance.now();
      if (left <= 0 || this.ended) {
        throw new Error(`${this.ended ? 'stream ended' : 'timed out'} waiting for ${what}; got ${JSON.stringify(this.events.map((e) => [e.id, e.data]))}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, Math.min(left, 100));
      });
      clearTimeout(timer);
    }
  }

  close(): void {
    this.controller.abort();
  }
}

let server: ChildProcess | undefined;
let base = '';
let buildMs = 0;

interface Published {
  id: string;
  /** When the route called hub.publish, in ms since the epoch (the same clock as {@link now}). */
  publishedAt: number;
}

async function publish(topic: string, data: string): Promise<Published> {
  const response = await fetch(`${base}/publish?topic=${topic}`, { method: 'POST', body: data });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()) as Published;
}

/** Milliseconds since the epoch, with performance.now()'s resolution. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

async function connections(): Promise<number> {
  const response = await fetch(`${base}/stats`);
  assert.equal(response.status, 200);
  return ((await response.json()) as { connections: number }).connections;
}

async function waitForConnections(count: number, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  let seen = await connections();
  while (seen !== count) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}: stats().connections is ${seen}, not ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
    seen = await connections();
  }
}

/**
 * Publishes `rounds` events one at a time, each only once the last has arrived. Returns their ids,
 * each event's delay from hub.publish (in the route) to its arrival here, and each publish POST's
 * round trip through Next, for comparison.
 */
async function oneByOne(stream: FetchEvents, topic: string, rounds: number): Promise<{ ids: string[]; delays: number[]; posts: number[] }> {
  const ids: string[] = [];
  const delays: number[] = [];
  const posts: number[] = [];
  const before = stream.events.length;
  for (let n = 1; n <= rounds; n++) {
    const sent = now();
    const { id, publishedAt } = await publish(topic, `${topic} ${n}`);
    posts.push(now() - sent);
    await stream.until(() => stream.events.length >= before + n, 5000, `event ${n} of ${topic}`);
    assert.equal(stream.events.length, before + n, 'exactly one more event');
    const event = stream.events[before + n - 1]!;
    assert.deepEqual([event.event, event.id, event.data], ['message', id, `${topic} ${n}`]);
    ids.push(id);
    delays.push(event.at - publishedAt);
  }
  return { ids, delays, posts };
}

function summary(delays: number[], posts: number[]): string {
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!.toFixed(1);
  return `median ${median(delays)} ms, max ${Math.max(...delays).toFixed(1)} ms from hub.publish in the route to the event's arrival, over ${delays.length} events (a publish POST's round trip through Next: median ${median(posts)} ms)`;
}

describe('serve-sse under next start (Next.js 16, app router)', () => {
  before(async () => {
    assert.ok(existsSync(join(ROOT, 'dist', 'esm', 'index.js')), 'the fixture imports the built package: run npm run build first');
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      execFile(process.execPath, [NEXT, 'build'], { cwd: APP, env: nextEnv(), timeout: BUILD_TIMEOUT, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`next build failed: ${error.message}\n${stdout}\n${stderr}`));
        else resolve();
      });
    });
    buildMs = performance.now() - started;

    // -p 0: the kernel picks the port, and Next prints the one it got.
    const child = spawn(process.execPath, [NEXT, 'start', '-p', '0', '-H', '127.0.0.1'], { cwd: APP, env: nextEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    server = child;
    let output = '';
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    base = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`next start did not get ready in ${START_TIMEOUT} ms:\n${output}`)), START_TIMEOUT);
      child.once('exit', (code) => reject(new Error(`next start exited with ${code}:\n${output}`)));
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const url = /Local:\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
        if (url && /Ready in/.test(output)) {
          clearTimeout(timer);
          resolve(url);
        }
      });
    });
  });

  after(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = once(server, 'exit');
      process.kill(server.pid!, 'SIGTERM');
      const timer = setTimeout(() => server!.exitCode === null && server!.signalCode === null && process.kill(server!.pid!, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(join(APP, DIST_DIR), { recursive: true, force: true });
  });

  test('the build', (t) => {
    t.diagnostic(`next build: ${(buildMs / 1000).toFixed(1)} s`);
  });

  test('a 200 event stream, not compressed, with events one by one, from a hub the routes share', async (t) => {
    assert.equal(await connections(), 0);
    // A browser asks for compression; the stream's Cache-Control: no-transform keeps Next's out.
    const stream = await FetchEvents.open(`${base}/events?topic=rounds`, { 'accept-encoding': 'gzip, deflate, br' });
    try {
      assert.equal(stream.response.status, 200);
      assert.equal(stream.response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      assert.equal(stream.response.headers.get('content-encoding'), null, 'Next must not compress the stream');
      assert.match(stream.response.headers.get('cache-control') ?? '', /no-transform/);
      assert.equal(stream.response.headers.get('x-accel-buffering'), 'no');
      // Headers at once, with a first comment, before any event.
      await stream.until(() => stream.comments.length > 0, 5000, 'the opening comment');
      // /stats and /publish are other routes, bundled apart: they see the same hub.
      assert.equal(await connections(), 1);
      const { delays, posts } = await oneByOne(stream, 'rounds', 8);
      t.diagnostic(`per-event delay: ${summary(delays, posts)}`);
      for (const delay of delays) assert.ok(delay < 2000, `an event took ${delay.toFixed(0)} ms: buffered?`);
    } finally {
      stream.close();
    }
    // The client going away frees its subscription.
    await waitForConnections(0, 5000, 'the subscription to end after the client left');
  });

  test('an app that overrides Cache-Control without no-transform: Next gzips, and still flushes every event', async (t) => {
    const stream = await FetchEvents.open(`${base}/events-no-transform-dropped?topic=gzipped`, { 'accept-encoding': 'gzip' });
    try {
      assert.equal(stream.response.status, 200);
      assert.equal(stream.response.headers.get('cache-control'), 'no-cache');
      // This is what no-transform prevents; Next then flushes its gzip stream after each chunk.
      assert.equal(stream.response.headers.get('content-encoding'), 'gzip');
      await waitForConnections(1, 5000, 'the subscription');
      const { delays, posts } = await oneByOne(stream, 'gzipped', 4);
      t.diagnostic(`per-event delay, gzipped: ${summary(delays, posts)}`);
    } finally {
      stream.close();
    }
    await waitForConnections(0, 5000, 'the subscription to end after the client left');
  });

  test('Last-Event-ID: what was missed, in order, then live events; every client leaving frees its subscription', async () => {
    const first = await FetchEvents.open(`${base}/events?topic=replay`);
    let ids: string[];
    try {
      await waitForConnections(1, 5000, 'the first subscription');
      ({ ids } = await oneByOne(first, 'replay', 5));
    } finally {
      first.close();
    }
    await waitForConnections(0, 5000, 'the first subscription to end');

    const again = await FetchEvents.open(`${base}/events?topic=replay`, { 'last-event-id': ids[1]! });
    const also = await FetchEvents.open(`${base}/events?topic=replay&topic=other`, { 'last-event-id': ids[3]! });
    try {
      await again.until(() => again.events.length >= 3, 5000, 'the replay');
      assert.deepEqual(again.events.map((e) => e.id), ids.slice(2));
      assert.deepEqual(again.events.map((e) => e.data), ['replay 3', 'replay 4', 'replay 5']);
      await also.until(() => also.events.length >= 1, 5000, 'the second replay');
      await waitForConnections(2, 5000, 'both subscriptions');
      const { id: live } = await publish('replay', 'live');
      await again.until(() => again.events.length === 4, 5000, 'the live event after the replay');
      await also.until(() => also.events.length === 2, 5000, 'the live event on the second stream');
      assert.deepEqual(again.events.map((e) => e.id), [...ids.slice(2), live]);
      assert.deepEqual(also.events.map((e) => e.id), [ids[4], live]);
    } finally {
      again.close();
      also.close();
    }
    await waitForConnections(0, 5000, 'both subscriptions to end after their clients left');
  });
});
