/**
 * `serve-sse/cluster` as a library: this test process is the cluster's primary (`clusterLog()`),
 * and its workers (./cluster-worker.ts) run library hubs on `clusterBackplane()`, each on a port of
 * its own so that the test chooses which worker it talks to. Ids, order, history for a worker that
 * starts late, ids of another primary, and a lagging worker that holds a resume rather than resetting.
 */
import assert from 'node:assert/strict';
import cluster, { type Worker } from 'node:cluster';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { clusterLog, type ClusterLog } from '../../src/backplanes/cluster.js';
import { openEvents, type EventReader } from '../helpers.js';

const WORKER = fileURLToPath(new URL('./cluster-worker.ts', import.meta.url));

interface Started {
  worker: Worker;
  url: string;
}

async function fork(env: Record<string, string> = {}): Promise<Started> {
  const worker = cluster.fork(env);
  worker.process.stdout?.resume();
  worker.process.stderr?.pipe(process.stderr);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the worker did not listen within 15 s')), 15_000);
    worker.on('message', (message: { test?: string; url?: string }) => {
      if (message.test !== 'listening') return;
      clearTimeout(timer);
      resolve(message.url!);
    });
    worker.once('exit', (code) => reject(new Error(`the worker exited (${code}) before it listened`)));
  });
  return { worker, url };
}

async function publish(url: string, topic: string, data: string, alias?: string): Promise<string> {
  const query = new URLSearchParams({ topic, data, ...(alias === undefined ? {} : { alias }) });
  const response = await fetch(`${url}/publish?${query}`, { method: 'POST' });
  const body = await response.text();
  assert.equal(response.status, 200, body);
  return body;
}

const lag = async (url: string, on: boolean): Promise<void> => void (await fetch(`${url}/lag?on=${on ? 1 : 0}`, { method: 'POST' })).text();

describe('serve-sse/cluster: the log in the primary', () => {
  let log: ClusterLog;
  let a: Started;
  let b: Started;
  const readers: EventReader[] = [];
  before(async () => {
    cluster.setupPrimary({ exec: WORKER, execArgv: ['--import', 'tsx'], silent: true });
    log = clusterLog({ history: 20 });
    [a, b] = await Promise.all([fork(), fork()]);
  });
  after(() => {
    for (const reader of readers) reader.res.destroy();
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
    log.close();
  });

  test('clusterLog() outside the primary, or twice, and clusterBackplane() outside a worker, say so', async () => {
    assert.throws(() => clusterLog(), /already running/);
    const { clusterBackplane } = await import('../../src/backplanes/cluster.js');
    assert.throws(() => clusterBackplane(), /runs in a node:cluster worker/);
  });

  test('ids are <epoch>-<seq>, and every worker hears every event in the same order', async () => {
    const onA = await openEvents(`${a.url}/events?topic=t`);
    const onB = await openEvents(`${b.url}/events?topic=t`);
    readers.push(onA, onB);
    const ids: string[] = [];
    for (let n = 1; n <= 10; n++) ids.push(await publish(n % 2 === 0 ? a.url : b.url, 't', `event ${n}`));
    assert.deepEqual(ids, Array.from({ length: 10 }, (_, index) => `${log.epoch}-${index + 1}`));
    for (const reader of [onA, onB]) {
      await reader.until(() => reader.events.length === 10);
      assert.deepEqual(reader.events.map((event) => [event.id, event.data]), ids.map((id, index) => [id, `event ${index + 1}`]));
    }
    assert.equal(log.appended, 10);
    assert.equal(log.lastId, ids.at(-1));
    assert.equal(log.workers, 2);
  });

  test('a worker that starts later gets the kept history: a resume on it replays exactly what followed', async () => {
    for (let n = 11; n <= 30; n++) await publish(a.url, 't', `event ${n}`);
    const late = await fork();
    // The hub keeps 20 (11 to 30); the log sent one more, so 10 is the point before them.
    const resumed = await openEvents(`${late.url}/events?topic=t`, { 'last-event-id': `${log.epoch}-10` });
    readers.push(resumed);
    await resumed.until(() => resumed.events.length === 20);
    assert.deepEqual(resumed.events.map((event) => event.data), Array.from({ length: 20 }, (_, index) => `event ${index + 11}`));
    const tooOld = await openEvents(`${late.url}/events?topic=t`, { 'last-event-id': `${log.epoch}-5` });
    const otherPrimary = await openEvents(`${late.url}/events?topic=t`, { 'last-event-id': `${log.epoch - 1000}-5` });
    readers.push(tooOld, otherPrimary);
    for (const [reader, reason] of [[tooOld, 'expired'], [otherPrimary, 'unknown']] as const) {
      await reader.until(() => reader.events.length === 1);
      assert.equal(reader.events[0]!.event, 'reset');
      assert.equal((JSON.parse(reader.events[0]!.data) as { reason: string }).reason, reason);
    }
  });

  test('a worker behind the log holds a resume from an id it has not heard (a log id, or a publisher\'s own) until it hears it: no reset', async () => {
    await lag(b.url, true);
    const logId = await publish(a.url, 'lag', 'first');
    const alias = 'urn:test:own-id';
    await publish(a.url, 'lag', 'second', alias);
    const fromLogId = await openEvents(`${b.url}/events?topic=lag`, { 'last-event-id': logId });
    const fromAlias = await openEvents(`${b.url}/events?topic=lag`, { 'last-event-id': alias });
    readers.push(fromLogId, fromAlias);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual([fromLogId.events, fromAlias.events], [[], []], 'held while the worker lags, not reset');
    await lag(b.url, false);
    const third = await publish(a.url, 'lag', 'third');
    await fromLogId.until(() => fromLogId.events.length === 2);
    await fromAlias.until(() => fromAlias.events.length === 1);
    assert.deepEqual(fromLogId.events.map((event) => [event.event, event.id, event.data]), [[undefined, alias, 'second'], [undefined, third, 'third']]);
    assert.deepEqual(fromAlias.events.map((event) => [event.event, event.id, event.data]), [[undefined, third, 'third']]);
  });
});
