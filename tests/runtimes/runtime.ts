/**
 * Bun and Deno for the runtime tests: finding the binary, running a fixture under it, and reading
 * event streams on the Node side with eventsource-parser (an independent parser).
 *
 * A missing runtime fails the test under CI=true and otherwise skips it with a loud warning (as
 * tests/chromium.ts does for Chromium): a developer without Bun or Deno can still run the rest,
 * but CI never passes without them.
 *
 * The fixtures import the built package by its name (`serve-sse`, `serve-sse/client`): the
 * package's self-reference through package.json "exports", which both runtimes resolve to
 * dist/esm, as they would in an app that installed it. So `npm run build` comes first (as in
 * `npm test`).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FIXTURES = join(ROOT, 'tests', 'runtimes', 'fixtures');

export type RuntimeName = 'bun' | 'deno';

export interface Runtime {
  name: RuntimeName;
  bin: string;
  /** What `--version` printed, first line. */
  version: string;
}

const INSTALL: Record<RuntimeName, string> = {
  bun: 'npm ci installs it as a dev dependency (node_modules/.bin/bun); or set BUN_BIN, or install from https://bun.sh',
  deno: 'npm ci installs it as a dev dependency (node_modules/.bin/deno); or set DENO_BIN, or install from https://deno.com',
};

/**
 * The runtime's binary: $BUN_BIN / $DENO_BIN, else the dev dependency's, else the first on PATH;
 * it counts only if `--version` runs (the npm package's binary may be a stub when its install was
 * cut short).
 */
export function findRuntime(name: RuntimeName): Runtime | undefined {
  const candidates = [
    process.env[`${name.toUpperCase()}_BIN`],
    join(ROOT, 'node_modules', '.bin', name),
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name)),
  ];
  for (const bin of candidates) {
    if (bin === undefined || bin === '' || !existsSync(bin)) continue;
    const run = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 15_000, env: runtimeEnv() });
    if (run.status === 0) return { name, bin, version: run.stdout.split('\n')[0]!.trim() };
  }
  return undefined;
}

/**
 * Whether the test can go on: with no runtime, fails it under CI=true, else skips it with a loud
 * warning on stderr (what: what goes untested).
 */
export function haveRuntime(t: TestContext, name: RuntimeName, runtime: Runtime | undefined, what: string): runtime is Runtime {
  if (runtime !== undefined) return true;
  const message = `${name} is missing: ${what} was not tested under ${name} (${INSTALL[name]})`;
  if (process.env.CI === 'true') assert.fail(`${message}; CI=true, so this is a failure`);
  process.stderr.write(`\n*** WARNING: ${message} ***\n\n`);
  t.skip(message);
  return false;
}

/** The built package the fixtures import: without it, say so rather than fail obscurely. */
export function assertBuilt(): void {
  for (const file of ['dist/esm/index.js', 'dist/esm/client/index.js']) {
    assert.ok(existsSync(join(ROOT, file)), `${file} is missing: run npm run build first (npm test does)`);
  }
}

function runtimeEnv(): NodeJS.ProcessEnv {
  // No update checks, no prompts, no telemetry: the runtimes must never reach out.
  return { ...process.env, DENO_NO_UPDATE_CHECK: '1', DENO_NO_PROMPT: '1', DO_NOT_TRACK: '1', NO_COLOR: '1' };
}

/**
 * The command line that runs `script` under the runtime, offline. Deno: file and package
 * resolution from the repository's node_modules (`manual`: never installs), no remote imports, no
 * lock file written, and only the permissions the fixtures need.
 */
export function commandFor(runtime: Runtime, script: string, args: string[] = [], flags: string[] = []): string[] {
  if (runtime.name === 'bun') return [runtime.bin, '--no-install', ...flags, script, ...args];
  return [
    runtime.bin,
    'run',
    '--no-remote',
    '--no-prompt',
    '--no-lock',
    '--node-modules-dir=manual',
    '--allow-net=127.0.0.1',
    '--allow-read',
    '--allow-env',
    ...flags,
    script,
    ...args,
  ];
}

export interface Fixture {
  child: ChildProcess;
  /** What the fixture printed on its first line: its listening URL. */
  url: string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Kills the child by its PID and waits (bounded) for it to exit. */
  stop(): Promise<void>;
}

/** Spawns a server fixture (`flags` for the runtime) and waits (bounded) for the URL it prints on stdout. */
export async function startFixture(runtime: Runtime, script: string, flags: string[] = [], ms = 20_000): Promise<Fixture> {
  const [bin, ...args] = commandFor(runtime, join(FIXTURES, script), [], flags);
  const child = spawn(bin!, args, { cwd: ROOT, env: runtimeEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(child.pid!, 'SIGTERM');
    const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, 'SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let stdout = '';
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        const newline = stdout.indexOf('\n');
        if (newline !== -1) resolve(stdout.slice(0, newline).trim());
      });
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`${runtime.name} ${script} exited (${code ?? signal}) before printing its URL:\n${stderr}`)));
      timer = setTimeout(() => reject(new Error(`${runtime.name} ${script} printed no URL within ${ms} ms:\n${stderr}`)), ms);
    });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, `the fixture's first line is its URL; got ${url}`);
    return { child, url, stderr: () => stderr, stop };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** How long the run took, ms. */
  ms: number;
}

/** Runs a fixture to its end; kills it (by PID) and rejects when it is still running after `ms`. */
export function runFixture(runtime: Runtime, script: string, args: string[], ms: number): Promise<Finished> {
  const [bin, ...rest] = commandFor(runtime, join(FIXTURES, script), args);
  const started = performance.now();
  const child = spawn(bin!, rest, { cwd: ROOT, env: runtimeEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.kill(child.pid!, 'SIGKILL');
      reject(new Error(`${runtime.name} ${script} was still running after ${ms} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, ms);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Math.round(performance.now() - started) });
    });
  });
}

export interface HandServer {
  /** `http://127.0.0.1:<port>`. */
  origin: string;
  /** Every response it has opened, in order. */
  responses: ServerResponse[];
}

/**
 * A Node event-stream server written by hand (independent of the library), for serve-sse/client
 * under the runtime, on 127.0.0.1 and a free port: every request gets a 200 `text/event-stream`
 * head (with `headers`), then `respond` writes the stream. After the test, every response is
 * destroyed and the server closed.
 */
export async function sseServer(
  t: TestContext,
  respond: (req: IncomingMessage, res: ServerResponse) => void,
  headers: Record<string, string> = {},
): Promise<HandServer> {
  const responses: ServerResponse[] = [];
  const server = createServer((req, res) => {
    responses.push(res);
    res.writeHead(200, { 'content-type': 'text/event-stream', ...headers });
    respond(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const res of responses) res.destroy();
    server.close();
    // A socket the runtime opened but never used would hold close() (and this file) open.
    server.closeAllConnections();
  });
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, responses };
}

export interface TimedEvent extends EventSourceMessage {
  /** performance.now() when it was parsed. */
  at: number;
}

/** An event-stream response on the Node side, parsed by eventsource-parser as it arrives. */
export class SseReader {
  readonly events: TimedEvent[] = [];
  readonly comments: Array<{ text: string; at: number }> = [];
  retry: number | undefined;
  /** The response is over (ended or cut). */
  ended = false;
  endedAt: number | undefined;
  #wakers: Array<() => void> = [];

  constructor(readonly res: IncomingMessage) {
    const parser = createParser({
      onEvent: (event) => this.#wake(this.events.push({ ...event, at: performance.now() })),
      onComment: (text) => this.#wake(this.comments.push({ text, at: performance.now() })),
      onRetry: (retry) => this.#wake((this.retry = retry)),
    });
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => parser.feed(chunk));
    res.on('error', () => {});
    res.once('close', () => {
      this.endedAt = performance.now();
      this.#wake((this.ended = true));
    });
  }

  /** Whether the response ended cleanly (the whole body came, not a cut connection). */
  get complete(): boolean {
    return this.res.complete;
  }

  /** Waits until `predicate` holds; fails after `ms`. */
  async until(predicate: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = performance.now() + ms;
    while (!predicate()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}; events so far: ${JSON.stringify(this.events).slice(0, 500)}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wakers.push(resolve);
        timer = setTimeout(resolve, Math.min(left, 100));
      });
      clearTimeout(timer);
    }
  }

  /** The client goes away: the connection is destroyed. */
  leave(): void {
    this.res.destroy();
  }

  #wake(_?: unknown): void {
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const wake of wakers) wake();
  }
}

/** Opens an event stream (a fresh connection each) and resolves once its headers arrive (bounded). */
export function openStream(url: string, headers: Record<string, string> = {}, ms = 5000): Promise<SseReader> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      clearTimeout(timer);
      resolve(new SseReader(res));
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no response headers from ${url} within ${ms} ms`));
    }, ms);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end();
  });
}

/** A bounded JSON request to a fixture's control endpoint. */
export async function fetchJson<T = unknown>(url: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  assert.equal(response.status, 200, `${init.method ?? 'GET'} ${url} answered ${response.status}`);
  return (await response.json()) as T;
}

/** Polls `probe` until it returns something other than undefined; fails after `ms`. */
export async function poll<T>(probe: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
