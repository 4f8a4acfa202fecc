/**
 * `serve-sse hub --workers N`, the real bin from dist (run `npm run build` first): N worker
 * processes on one port and one log. Every request goes over a fresh connection (agent: false), so
 * the primary hands each to the next worker; the `serve-sse-worker` response header says which one
 * answered, which is how these tests know that an event crossed processes.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { compareLogIds } from '../../src/backplanes/log-id.js';
import { openEvents, waitFor, type EventReader } from '../helpers.js';
import { redisMissing, REDIS_URL, TestKeys } from '../redis.js';
import { cleanEnv, HUB_BIN, jsonLines, killLeft, PUBLISHER_KEY, publisherToken, send, sign, startHubBin, SUBSCRIBER_KEY, subscriberToken } from './hub-helpers.js';

const BIN = HUB_BIN;
const children: ChildProcess[] = [];
after(() => killLeft(children));

interface Workers {
  child: ChildProcess;
  url: string;
  /** Every log line so far, parsed (the primary's and every worker's: one stdout). */
  lines(): Array<Record<string, unknown>>;
  stderr(): string;
}

/** Starts the bin and resolves once the primary says that every worker listens. */
async function startWorkers(args: string[], env: Record<string, string> = {}): Promise<Workers> {
  const { child, url, stdout, stderr } = await startHubBin(['--port', '0', ...args], {
    env: { SERVE_SSE_PUBLISHER_KEY: PUBLISHER_KEY, ...env },
    children,
    timeoutMs: 15_000,
  });
  return { child, url, lines: () => jsonLines(stdout()), stderr };
}

async function exitCode(child: ChildProcess, ms: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit', { signal: AbortSignal.timeout(ms) })) as [number | null];
  return code;
}

const workerOf = (headers: Record<string, unknown>): number => Number(headers['serve-sse-worker']);

interface Published {
  id: string;
  worker: number;
}

/** One publish over a fresh connection: the id, and the worker that took it. */
async function publish(url: string, topic: string, data: string): Promise<Published> {
  const answer = await send(`${url}/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await publisherToken(['*'])}`, 'content-type': 'application/json' },
    body: JSON.stringify({ topic, data }),
  });
  assert.equal(answer.status, 200, answer.body);
  return { id: answer.body, worker: workerOf(answer.headers) };
}

/** Opens `/events` until a worker that `wanted` accepts answers; the others' streams are closed. */
async function subscribeOn(url: string, path: string, wanted: (worker: number) => boolean, headers: Record<string, string> = {}): Promise<EventReader> {
  for (let attempt = 0; attempt < 12; attempt++) {
    const reader = await openEvents(`${url}${path}`, headers);
    assert.equal(reader.res.statusCode, 200);
    if (wanted(workerOf(reader.res.headers))) return reader;
    reader.res.destroy();
  }
  throw new Error(`no connection reached the wanted worker in 12 attempts (${path})`);
}

/** Checks that `reader` got exactly `published`, in order, each once, with ascending ids. */
function assertExactly(reader: EventReader, published: Array<Published & { data: string }>, what: string): void {
  assert.deepEqual(reader.events.map((event) => event.data), published.map((event) => event.data), `${what}: every event once, in order`);
  assert.deepEqual(reader.events.map((event) => event.id), published.map((event) => event.id), `${what}: the ids publish returned`);
  for (let index = 1; index < reader.events.length; index++) {
    assert.ok(compareLogIds(reader.events[index - 1]!.id!, reader.events[index]!.id!) < 0, `${what}: ids ascend`);
  }
}

/**
 * The delivery check: a subscriber on one worker, 30 publishes over fresh connections (so on
 * every worker in turn), each received once, in order, with ascending ids; some came through
 * workers other than the subscriber's.
 */
async function checkDelivery(url: string, topic: string, headers: Record<string, string> = {}): Promise<void> {
  const reader = await openEvents(`${url}/events?topic=${topic}`, headers);
  assert.equal(reader.res.statusCode, 200);
  const subscriberWorker = workerOf(reader.res.headers);
  const published: Array<Published & { data: string }> = [];
  for (let n = 1; n <= 30; n++) published.push({ ...(await publish(url, topic, `event ${n}`)), data: `event ${n}` });
  await reader.until(() => reader.events.length >= published.length, 5000, 'every event');
  // Nothing more comes: no duplicate.
  await new Promise((resolve) => setTimeout(resolve, 100));
  assertExactly(reader, published, 'live');
  const through = new Set(published.map((event) => event.worker));
  assert.equal(through.size, 3, `publishes went to every worker: ${[...through].join(', ')}`);
  assert.ok(published.filter((event) => event.worker !== subscriberWorker).length >= 15, 'most publishes were taken by another worker than the subscriber\'s');
  reader.res.destroy();
}

describe('serve-sse hub --workers 3, the log in the primary', () => {
  let hub: Workers;
  let headers: Record<string, string>;
  before(async () => {
    hub = await startWorkers(['--workers', '3', '--history', '200', '--subscriber-key', SUBSCRIBER_KEY, '--anonymous', '--shutdown-retry', '1000', '--shutdown-timeout', '3000']);
    headers = { authorization: `Bearer ${await subscriberToken(['*'])}` };
  });
  after(() => hub?.child.kill('SIGKILL'));

  test('one "serve-sse hub listening" line, from the primary, after one "worker listening" per worker; lines say which worker', () => {
    const lines = hub.lines();
    const listening = lines.filter((line) => line.msg === 'worker listening');
    assert.deepEqual(listening.map((line) => line.worker).sort(), [1, 2, 3]);
    const primary = lines.find((line) => line.msg === 'serve-sse hub listening')!;
    assert.equal(primary.worker, 0);
    assert.equal(primary.workers, 3);
    assert.equal(primary.pid, hub.child.pid);
    assert.ok(lines.every((line) => typeof line.worker === 'number'), 'every line has its worker');
  });

  test('a subscriber gets every event published through the other workers, once, in order, ids ascending', async () => {
    await checkDelivery(hub.url, 'delivery', headers);
  });

  test('a resume with Last-Event-ID on another worker gets exactly the missed events, then live ones', async () => {
    const first = await openEvents(`${hub.url}/events?topic=resume`, headers);
    const firstWorker = workerOf(first.res.headers);
    const seen: Array<Published & { data: string }> = [];
    for (let n = 1; n <= 5; n++) seen.push({ ...(await publish(hub.url, 'resume', `seen ${n}`)), data: `seen ${n}` });
    await first.until(() => first.events.length === 5);
    first.res.destroy();
    const missed: Array<Published & { data: string }> = [];
    for (let n = 1; n <= 7; n++) missed.push({ ...(await publish(hub.url, 'resume', `missed ${n}`)), data: `missed ${n}` });

    const resumed = await subscribeOn(hub.url, '/events?topic=resume', (worker) => worker !== firstWorker, { ...headers, 'last-event-id': seen.at(-1)!.id });
    await resumed.until(() => resumed.events.length >= missed.length);
    const live = { ...(await publish(hub.url, 'resume', 'live')), data: 'live' };
    await resumed.until(() => resumed.events.length >= missed.length + 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assertExactly(resumed, [...missed, live], 'resumed');
    resumed.res.destroy();
  });

  test('a resume with an id just published through another worker waits for it rather than being reset', async () => {
    let crossed = 0;
    for (let round = 0; round < 6; round++) {
      const just = await publish(hub.url, 'fresh', `just ${round}`);
      const reader = await openEvents(`${hub.url}/events?topic=fresh`, { ...headers, 'last-event-id': just.id });
      if (workerOf(reader.res.headers) !== just.worker) crossed++;
      const next = await publish(hub.url, 'fresh', `next ${round}`);
      await reader.until(() => reader.events.length >= 1);
      await new Promise((resolve) => setTimeout(resolve, 30));
      assert.deepEqual(reader.events.map((event) => [event.event ?? 'message', event.data, event.id]), [['message', `next ${round}`, next.id]], 'no reset: only the event after the id');
      reader.res.destroy();
    }
    assert.ok(crossed >= 3, `${crossed} of 6 resumes were on another worker than the publish`);
  });

  test('/metrics from any worker has every worker\'s figures with a worker label, and the primary\'s', async () => {
    const answers = await Promise.all([1, 2, 3].map(() => send(`${hub.url}/metrics`)));
    assert.deepEqual(new Set(answers.map((answer) => workerOf(answer.headers))).size, 3, 'three scrapes, three workers');
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      const published = [...answer.body.matchAll(/^serve_sse_published_total\{worker="(\d)"\} (\d+)$/gm)];
      assert.deepEqual(published.map((match) => match[1]).sort(), ['1', '2', '3'], answer.body);
      // Each event is counted by the worker that took its publish: the sum is every publish so far.
      assert.equal(published.reduce((sum, match) => sum + Number(match[2]), 0), 30 + 12 + 1 + 12);
      assert.equal(answer.body.match(/^# TYPE serve_sse_published_total counter$/gm)?.length, 1, 'one TYPE line per family');
      assert.match(answer.body, /^serve_sse_workers 3$/m);
      assert.match(answer.body, /^serve_sse_http_responses_total\{worker="\d",endpoint="\/publish",code="200"\} \d+$/m);
    }
    for (const path of ['/healthz', '/readyz']) assert.equal((await send(`${hub.url}${path}`)).status, 200);
  });

  test('Mercure: the subscriptions API lists the subscribers of every worker; a killed worker\'s leave it, announced as ended', { timeout: 15000 }, async () => {
    const watch = { authorization: `Bearer ${await sign({ mercure: { subscribe: ['*'] } }, { key: SUBSCRIBER_KEY })}` };
    const subscribers = new Map<number, EventReader>();
    while (subscribers.size < 3) {
      const reader = await openEvents(`${hub.url}/.well-known/mercure?topic=${encodeURIComponent('https://example.com/room')}`);
      assert.equal(reader.res.statusCode, 200);
      const worker = workerOf(reader.res.headers);
      if (subscribers.has(worker)) reader.res.destroy();
      else subscribers.set(worker, reader);
    }
    const listed = async (): Promise<Array<Record<string, unknown>>> => {
      const answer = await send(`${hub.url}/.well-known/mercure/subscriptions`, { headers: watch });
      assert.equal(answer.status, 200, answer.body);
      return (JSON.parse(answer.body) as { subscriptions: Array<Record<string, unknown>> }).subscriptions.filter((doc) => doc.topic === 'https://example.com/room');
    };
    await waitFor(async () => (await listed()).length === 3, 5000, 'three subscriptions listed');
    const answers = await Promise.all([1, 2, 3].map(() => listed()));
    assert.ok(answers.every((docs) => docs.length === 3), 'whichever worker answers');

    // A watcher of subscription events on another worker than the victim's.
    const victim = 2;
    const watcher = await subscribeOn(hub.url, `/.well-known/mercure?topic=${encodeURIComponent('/.well-known/mercure/subscriptions/{topic}/{subscriber}')}`, (worker) => worker !== victim, watch);
    const pid = lastListening(hub, victim).pid as number;
    const deaths = hub.lines().filter((line) => line.msg === 'worker died; starting it again').length;
    process.kill(pid, 'SIGKILL');
    // A connection the primary hands out at the moment of the kill is lost (closed): wait for it to know.
    await waitFor(() => hub.lines().filter((line) => line.msg === 'worker died; starting it again').length > deaths, 5000, 'the primary to log the death');
    await waitFor(async () => (await listed()).length === 2, 5000, "the killed worker's subscription to leave the list");
    await watcher.until(
      () => watcher.events.some((event) => (JSON.parse(event.data) as { active?: boolean; topic?: string }).active === false),
      5000,
      'an "ended" announcement for the killed worker\'s subscription',
    );
    for (const reader of [...subscribers.values(), watcher]) reader.res.destroy();
    // Started again, for the next test.
    await waitFor(() => lastListening(hub, victim).pid !== pid, 10_000, 'the killed worker to be started again');
  });

  test('kill -9 one worker: the others serve on, it is started again, and its new self replays the history on resume', async () => {
    const readers = new Map<number, EventReader>();
    while (readers.size < 3) {
      const reader = await openEvents(`${hub.url}/events?topic=crash`, headers);
      const worker = workerOf(reader.res.headers);
      if (readers.has(worker)) reader.res.destroy();
      else readers.set(worker, reader);
    }
    const before = { ...(await publish(hub.url, 'crash', 'before')), data: 'before' };
    for (const reader of readers.values()) await reader.until(() => reader.events.length === 1);

    const victim = 3;
    const pid = lastListening(hub, victim).pid as number;
    const deathsBefore = hub.lines().filter((line) => line.msg === 'worker died; starting it again').length;
    process.kill(pid, 'SIGKILL');
    await waitFor(() => hub.lines().filter((line) => line.msg === 'worker died; starting it again').length > deathsBefore, 5000, 'the primary to log the death');
    const death = hub.lines().filter((line) => line.msg === 'worker died; starting it again').at(-1)!;
    assert.equal(death.worker, victim);
    assert.equal(death.signal, 'SIGKILL');
    assert.equal(death.level, 50, 'logged as an error');
    await readers.get(victim)!.until(() => readers.get(victim)!.ended, 5000, "the killed worker's stream to end");

    // Meanwhile the others take every request.
    const missed: Array<Published & { data: string }> = [];
    for (let n = 1; n <= 6; n++) missed.push({ ...(await publish(hub.url, 'crash', `after ${n}`)), data: `after ${n}` });
    assert.ok(missed.every((event) => event.worker !== victim));
    for (const [worker, reader] of readers) {
      if (worker === victim) continue;
      await reader.until(() => reader.events.length === 1 + missed.length);
      assertExactly(reader, [before, ...missed], `worker ${worker}`);
      reader.res.destroy();
    }

    await waitFor(() => lastListening(hub, victim).pid !== pid, 10_000, 'the killed worker to be started again');
    const resumed = await subscribeOn(hub.url, '/events?topic=crash', (worker) => worker === victim, { ...headers, 'last-event-id': before.id });
    await resumed.until(() => resumed.events.length >= missed.length);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assertExactly(resumed, missed, 'replayed by the restarted worker');
    resumed.res.destroy();
    assert.equal((await send(`${hub.url}/metrics`)).body.match(/^serve_sse_worker_restarts_total (\d+)$/m)?.[1], '2');
  });

  test('SIGTERM: every open stream, on every worker, gets the retry hint and a clean end; the primary exits 0', async () => {
    const readers = new Map<number, EventReader>();
    while (readers.size < 3) {
      const reader = await openEvents(`${hub.url}/events?topic=bye`, headers);
      const worker = workerOf(reader.res.headers);
      if (readers.has(worker)) reader.res.destroy();
      else readers.set(worker, reader);
    }
    const started = Date.now();
    hub.child.kill('SIGTERM');
    assert.equal(await exitCode(hub.child, 8000), 0);
    assert.ok(Date.now() - started < 3000 + 2500, `exited in ${Date.now() - started} ms`);
    for (const [worker, reader] of readers) {
      await reader.until(() => reader.ended, 2000, `worker ${worker}'s stream to end`);
      assert.ok(reader.retry !== undefined && reader.retry >= 1000 && reader.retry < 2000, `worker ${worker}: retry ${reader.retry} within [1000, 2000)`);
    }
    const lines = hub.lines();
    assert.deepEqual(lines.filter((line) => line.msg === 'stopped').map((line) => line.worker).sort(), [0, 1, 2, 3]);
    assert.equal(hub.stderr(), '');
  });
});

/** The latest "worker listening" line of a worker: its current process. */
function lastListening(hub: Workers, worker: number): Record<string, unknown> {
  return hub.lines().filter((line) => line.msg === 'worker listening' && line.worker === worker).at(-1)!;
}

describe('serve-sse hub --workers: start-up failures', () => {
  test('a bad --workers or SERVE_SSE_WORKERS exits 2 before forking anything', () => {
    for (const [args, env, message] of [
      [['--workers', '0'], {}, /--workers must be an integer from 1 to 1024; got "0"/],
      [['--workers', 'many'], {}, /--workers must be an integer/],
      [[], { SERVE_SSE_WORKERS: '2.5' }, /SERVE_SSE_WORKERS must be an integer/],
      [['--workers', '3', '--port', 'abc'], {}, /--port must be an integer/],
    ] as const) {
      const { status, stdout, stderr } = spawnSync(process.execPath, [BIN, 'hub', ...args], { timeout: 10_000, encoding: 'utf8', env: cleanEnv(env) });
      assert.equal(status, 2, stderr);
      assert.match(stderr, message);
      assert.equal(stdout, '', 'no worker started');
    }
  });

  test('a port in use exits 1 with one line', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as AddressInfo;
    try {
      const child = spawn(process.execPath, [BIN, 'hub', '--workers', '3', '--host', '127.0.0.1', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
      children.push(child);
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      child.stdout!.resume();
      assert.equal(await exitCode(child, 10_000), 1);
      const lines = stderr.trim().split('\n');
      assert.equal(lines.length, 1, stderr);
      assert.match(lines[0]!, /^serve-sse hub: cannot start: .*EADDRINUSE/);
    } finally {
      taken.close();
    }
  });
});

const redisSkip = await redisMissing();

describe('serve-sse hub --workers 3 --redis', { skip: redisSkip }, () => {
  const keys = new TestKeys();
  after(() => keys.cleanUp());

  test('a subscriber gets every event published through the other workers, once, in order, ids ascending', async () => {
    const hub = await startWorkers(['--workers', '3', '--redis', REDIS_URL, '--redis-key', keys.key(), '--shutdown-timeout', '2000']);
    try {
      assert.ok(hub.lines().filter((line) => line.msg === 'worker listening').every((line) => line.redis === true));
      await checkDelivery(hub.url, 'redis-delivery');
      hub.child.kill('SIGTERM');
      assert.equal(await exitCode(hub.child, 8000), 0);
    } finally {
      hub.child.kill('SIGKILL');
    }
  });
});
