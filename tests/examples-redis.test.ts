/**
 * examples/redis.mjs run as users run it, twice, against the Redis at REDIS_URL (skipped loudly
 * without one, failed under CI=true): a client of one instance sees the ticks of both.
 * Imports the built package: `npm run build` first (npm test does).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { compareLogIds } from '../src/backplanes/log-id.js';
import { REDIS_URL, redisMissing, TestKeys } from './redis.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const noRedis = await redisMissing();
const keys = new TestKeys();
const children: ChildProcess[] = [];

after(async () => {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  await keys.cleanUp();
});

/** `node examples/redis.mjs` on a free loopback port; resolves with the url it prints. */
function startInstance(key: string): Promise<string> {
  const child = spawn(process.execPath, ['examples/redis.mjs'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', REDIS_URL, STREAM_KEY: key },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`examples/redis.mjs printed no url within 10 s: ${output}`)), 10_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
      if (url !== undefined) {
        clearTimeout(timer);
        resolve(url);
      }
    });
    child.once('exit', (code) => reject(new Error(`examples/redis.mjs exited (${code}): ${output}`)));
  });
}

test('examples/redis.mjs: a client of one instance gets the ticks of both, with increasing ids', { skip: noRedis }, async () => {
  const key = keys.key();
  const [first, second] = await Promise.all([startInstance(key), startInstance(key)]);
  assert.ok(first.endsWith('/events?topic=ticks'), first);
  const source = new EventSource(second);
  const ticks: Array<{ id: string; from: number }> = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ticks from two instances did not arrive: ${JSON.stringify(ticks)}`)), 10_000);
      source.addEventListener('tick', (event) => {
        ticks.push({ id: event.lastEventId, from: (JSON.parse(String(event.data)) as { from: number }).from });
        if (new Set(ticks.map((tick) => tick.from)).size === 2) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } finally {
    source.close();
  }
  const pids = new Set(children.map((child) => child.pid));
  assert.ok(ticks.every((tick) => pids.has(tick.from)));
  assert.ok(ticks.every((tick, i) => i === 0 || compareLogIds(tick.id, ticks[i - 1]!.id) > 0), 'ids increase');

  // SIGTERM: the hub closes its Redis connections, and with nothing left open the process ends.
  for (const child of children) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    const [code, signal] = (await exited) as [number | null, string | null];
    clearTimeout(timer);
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
  }
});
