/** The examples run as users run them, and are read by a real client (the `eventsource` package). */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { openEvents } from './helpers.js';

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

interface Tick {
  id: string;
  data: string;
}

/** Reads `count` tick events from `url`, then closes the connection. */
function readTicks(url: string, count: number, timeout = 10_000): Promise<Tick[]> {
  const source = new EventSource(url);
  const ticks: Tick[] = [];
  return new Promise<Tick[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${ticks.length} of ${count} ticks within ${timeout} ms`)), timeout);
    source.addEventListener('tick', (event) => {
      ticks.push({ id: event.lastEventId, data: String(event.data) });
      if (ticks.length === count) {
        clearTimeout(timer);
        resolve(ticks);
      }
    });
  }).finally(() => source.close());
}

test('examples/node-http.mjs streams tick events with increasing ids, and resumes after Last-Event-ID', async () => {
  const { url, child, stderr } = await start('examples/node-http.mjs');
  assert.deepEqual(await readTicks(url, 2), [
    { id: '1', data: '{"count":1}' },
    { id: '2', data: '{"count":2}' },
  ]);
  // An EventSource cannot set Last-Event-ID on its first connection; the query parameter stands in.
  assert.deepEqual(await readTicks(`${url}?lastEventId=41`, 1), [{ id: '42', data: '{"count":42}' }]);
  // Give the server a moment to see the last client leave: that must not log an error.
  await new Promise((resolve) => setTimeout(resolve, 200));
  child.kill('SIGTERM');
  await once(child, 'exit', { signal: AbortSignal.timeout(5_000) });
  assert.equal(stderr(), '', 'nothing on stderr');
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
