/**
 * The real `serve-sse hub` from dist (run `npm run build` first): flags and their environment
 * twins, --help, exit codes, pino JSON logs, and SIGTERM with open streams.
 */
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openEvents, type EventReader } from '../helpers.js';
import { cleanEnv, HUB_BIN, killLeft, PUBLISHER_KEY, publisherToken, send, startHubBin, SUBSCRIBER_KEY, subscriberToken, type StartedHubBin } from '../server/hub-helpers.js';

const BIN = HUB_BIN;
const children: ChildProcess[] = [];
after(() => killLeft(children));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin to completion (a hang is killed by the timeout, and fails). */
function run(args: string[], env: Record<string, string> = {}): Result {
  const { status, stdout, stderr } = spawnSync(process.execPath, [BIN, ...args], { timeout: 10_000, encoding: 'utf8', env: cleanEnv(env) });
  return { code: status, stdout, stderr };
}

/** Starts the hub and resolves with its URL, read from the pino line it writes once listening. */
function start(args: string[], env: Record<string, string> = {}): Promise<StartedHubBin> {
  return startHubBin(args, { env, children });
}

async function exitCode(child: ChildProcess, ms: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit', { signal: AbortSignal.timeout(ms) })) as [number | null];
  return code;
}

async function publish(url: string, token: string, topic: string, data: string): Promise<number> {
  const answer = await send(`${url}/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ topic, data }),
  });
  return answer.status;
}

describe('serve-sse hub (the bin)', () => {
  test('--help documents every flag and its environment twin, and exits 0', async () => {
    const { code, stdout } = run(['hub', '--help']);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: serve-sse hub/);
    for (const [flag, env] of [
      ['--port', 'PORT'],
      ['--redis', 'REDIS_URL'],
      ['--publisher-key', 'SERVE_SSE_PUBLISHER_KEY'],
      ['--subscriber-key', 'SERVE_SSE_SUBSCRIBER_KEY'],
      ['--cors', 'SERVE_SSE_CORS'],
      ['--max-body', 'SERVE_SSE_MAX_BODY'],
      ['--max-connections-per-ip', 'SERVE_SSE_MAX_CONNECTIONS_PER_IP'],
      ['--log-level', 'LOG_LEVEL'],
      ['--ui', 'SERVE_SSE_UI'],
    ]) {
      assert.match(stdout, new RegExp(`${flag}\\b[^]*?env ${env}\\b`), `${flag} with ${env}`);
    }
    const top = run(['--help']);
    assert.match(top.stdout, /\bhub\b/, 'the top-level help lists the hub command');
  });

  test('bad flags and bad environment values exit 2 with the error and a pointer to --help', async () => {
    for (const [args, env, message] of [
      [['hub', '--port', 'abc'], {}, /--port must be an integer/],
      [['hub', '--frobnicate'], {}, /frobnicate/],
      [['hub'], { PORT: 'abc' }, /PORT must be an integer/],
      [['hub', '--redis', 'http://example'], {}, /--redis must be a redis:\/\//],
      [['hub', '--cors', 'not an origin'], {}, /--cors/],
    ] as Array<[string[], Record<string, string>, RegExp]>) {
      const { code, stderr } = run(args, env);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.match(stderr, message);
      assert.match(stderr, /serve-sse hub --help/);
    }
  });

  test('the environment twins configure it, and flags win over them', async () => {
    // PORT is invalid, but --port is given, so it is never looked at.
    const hub = await start(['--port', '0', '--publisher-key', PUBLISHER_KEY], {
      PORT: 'not a port',
      SERVE_SSE_PUBLISHER_KEY: 'the-environment-key-loses-0123456789',
      SERVE_SSE_SUBSCRIBER_KEY: SUBSCRIBER_KEY,
      SERVE_SSE_MAX_CONNECTIONS_PER_IP: '1',
    });
    try {
      assert.equal(await publish(hub.url, await publisherToken(['a']), 'a', 'x'), 200, 'the flag key verifies');
      assert.equal(await publish(hub.url, await publisherToken(['a'], { key: 'the-environment-key-loses-0123456789' }), 'a', 'x'), 401);
      assert.equal((await send(`${hub.url}/events?topic=a`)).status, 401, 'SERVE_SSE_SUBSCRIBER_KEY applies');
      const reader = await openEvents(`${hub.url}/events?topic=a`, { authorization: `Bearer ${await subscriberToken(['a'])}` });
      assert.equal(reader.res.statusCode, 200);
      assert.equal((await send(`${hub.url}/events?topic=a`, { headers: { authorization: `Bearer ${await subscriberToken(['a'])}` } })).status, 429, 'SERVE_SSE_MAX_CONNECTIONS_PER_IP applies');
      reader.res.destroy();
    } finally {
      hub.child.kill('SIGKILL');
    }
  });

  test('PORT from the environment; logs are pino JSON lines; SIGTERM with open streams sends retry, ends them, exits 0', async () => {
    const hub = await start(['--shutdown-retry', '2500', '--log-level', 'debug'], { PORT: '0', SERVE_SSE_PUBLISHER_KEY: PUBLISHER_KEY });
    assert.notEqual(new URL(hub.url).port, '8080');
    const readers: EventReader[] = await Promise.all([1, 2, 3].map(() => openEvents(`${hub.url}/events?topic=t`)));
    assert.equal(await publish(hub.url, await publisherToken(['t']), 't', 'before shutdown'), 200);
    for (const reader of readers) await reader.until(() => reader.events.length === 1);

    const started = Date.now();
    hub.child.kill('SIGTERM');
    assert.equal(await exitCode(hub.child, 8000), 0);
    assert.ok(Date.now() - started < 5000, `exited in ${Date.now() - started} ms`);
    for (const reader of readers) {
      await reader.until(() => reader.ended, 2000, 'the stream to end');
      assert.ok(reader.retry! >= 2500 && reader.retry! < 5000, `retry ${reader.retry} within [2500, 5000)`);
      assert.equal(reader.events[0]?.data, 'before shutdown');
    }

    const lines = hub.stdout().trim().split('\n');
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const entry of entries) {
      assert.equal(typeof entry.level, 'number');
      assert.equal(typeof entry.time, 'number');
      assert.equal(typeof entry.msg, 'string');
    }
    const messages = entries.map((entry) => entry.msg);
    assert.equal(messages.filter((msg) => msg === 'subscriber connected').length, 3);
    assert.equal(messages.filter((msg) => msg === 'subscriber disconnected').length, 3);
    assert.ok(messages.includes('published'), 'publishes are logged at debug level');
    assert.ok(messages.includes('shutting down'));
    assert.ok(messages.includes('stopped'));
  });

  test('SIGINT stops it too, with exit 0; LOG_LEVEL=debug turns on the publish lines', async () => {
    const hub = await start(['--port', '0'], { LOG_LEVEL: 'debug', SERVE_SSE_PUBLISHER_KEY: PUBLISHER_KEY });
    const reader = await openEvents(`${hub.url}/events?topic=t`);
    assert.equal(await publish(hub.url, await publisherToken(['t']), 't', 'x'), 200);
    await reader.until(() => reader.events.length === 1);
    hub.child.kill('SIGINT');
    assert.equal(await exitCode(hub.child, 8000), 0);
    await reader.until(() => reader.ended);
    assert.match(hub.stdout(), /"level":20,[^\n]*"msg":"published"/);
  });
});

describe('optional peers', () => {
  test('without the server\'s dependencies installed, the hub names serve-sse-hub and exits 1; --help, hub --help and the demo are unaffected', () => {
    // A copy of the package with no node_modules beside it: what `npm install serve-sse` alone gives.
    const dir = mkdtempSync(join(tmpdir(), 'serve-sse-nopeers-'));
    try {
      cpSync(fileURLToPath(new URL('../../dist', import.meta.url)), join(dir, 'dist'), { recursive: true });
      cpSync(fileURLToPath(new URL('../../package.json', import.meta.url)), join(dir, 'package.json'));
      const bin = join(dir, 'dist/esm/cli/main.js');
      const hub = spawnSync(process.execPath, [bin, 'hub', '--port', '0'], { timeout: 10_000, encoding: 'utf8', env: cleanEnv() });
      assert.equal(hub.status, 1);
      assert.match(hub.stderr, /^serve-sse hub needs the hub server's dependencies \((pino|jose) is missing\): npm install serve-sse-hub\n$/);
      const hubHelp = spawnSync(process.execPath, [bin, 'hub', '--help'], { timeout: 10_000, encoding: 'utf8', env: cleanEnv() });
      assert.equal(hubHelp.status, 0, hubHelp.stderr);
      assert.match(hubHelp.stdout, /--publisher-key/);
      const help = spawnSync(process.execPath, [bin, '--help'], { timeout: 10_000, encoding: 'utf8', env: cleanEnv() });
      assert.equal(help.status, 0);
      assert.match(help.stdout, /demo/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
