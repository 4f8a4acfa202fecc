/**
 * What every Redis test shares: whether Redis (and redis-server, for fault tests) is there, keys
 * that no two tests share and that are deleted afterwards, a redis-server of the test's own, a
 * TCP proxy that cuts one instance off from Redis, and hub instances in processes of their own.
 *
 * Missing Redis skips the tests loudly on a developer's machine, and fails the run under
 * CI=true: a CI that silently skips them would pass without testing the backplane.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { counterKey } from '../src/backplanes/redis-entries.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
const IN_CI = process.env.CI === 'true';

/**
 * `false` when `what` is there; otherwise the reason to skip, after a warning nobody can miss.
 * @throws under CI=true, where skipping is not an option
 */
function missing(what: string, problem: string | undefined): string | false {
  if (problem === undefined) return false;
  const reason = `${what}: ${problem}`;
  if (IN_CI) throw new Error(`CI=true and ${reason}: the Redis tests cannot be skipped in CI`);
  console.warn(`\n!!!!! SKIPPING the Redis tests: ${reason} !!!!!\n`);
  return reason;
}

/** `false` when Redis answers at REDIS_URL, else why the tests skip (see {@link missing}). */
export async function redisMissing(): Promise<string | false> {
  const probe = new Redis(REDIS_URL, { connectTimeout: 1000, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  // The connection's own error says more than the "Connection is closed" that connect() rejects with.
  let cause = '';
  probe.on('error', (error: Error) => (cause ||= error.message));
  let problem: string | undefined;
  try {
    await probe.connect();
    await probe.ping();
  } catch (error) {
    problem = `no Redis at REDIS_URL=${REDIS_URL} (${cause || (error as Error).message})`;
  } finally {
    probe.disconnect();
  }
  return missing('Redis', problem);
}

/** `false` when the tests can start redis-server themselves, else why they skip. */
export function redisServerMissing(): string | false {
  try {
    accessSync(REDIS_SERVER, constants.X_OK);
    return missing('redis-server', undefined);
  } catch {
    return missing('redis-server', `${REDIS_SERVER} is not an executable (set REDIS_SERVER)`);
  }
}

/**
 * Stream keys for one test file, each used once; `cleanUp()` deletes them all, with the counter the
 * backplane keeps beside each, and nothing else.
 */
export class TestKeys {
  readonly #keys: Array<{ key: string; url: string }> = [];

  key(url = REDIS_URL): string {
    const key = `serve-sse-test:${randomUUID()}`;
    this.#keys.push({ key, url });
    return key;
  }

  async cleanUp(): Promise<void> {
    const byUrl = new Map<string, string[]>();
    for (const { key, url } of this.#keys.splice(0)) byUrl.set(url, [...(byUrl.get(url) ?? []), key, counterKey(key)]);
    // A server a test has already stopped has nothing left to delete.
    for (const [url, keys] of byUrl) await withRedis(url, (redis) => redis.del(...keys)).catch(() => {});
  }
}

/** Runs `work` on a connection of its own, closed afterwards. */
export async function withRedis<T>(url: string, work: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { connectTimeout: 2000, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  redis.on('error', () => {});
  try {
    return await work(redis);
  } finally {
    redis.disconnect();
  }
}

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

export interface OwnRedisOptions {
  /**
   * Whether every write reaches the append-only file before its reply (`appendonly yes`,
   * `appendfsync always`), so that what was acknowledged survives SIGKILL. Without it, a restart
   * starts empty. Default true.
   */
  persistence?: boolean;
}

/** A redis-server of the test's own, its data in a temporary directory that outlives a kill. */
export class OwnRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'serve-sse-redis-'));
  readonly persistence: boolean;
  #process: ChildProcess | undefined;

  constructor(
    readonly port: number,
    readonly password: string,
    options: OwnRedisOptions = {},
  ) {
    this.persistence = options.persistence ?? true;
  }

  get url(): string {
    return `redis://:${this.password}@127.0.0.1:${this.port}`;
  }

  /** Starts it (again) on its port and directory, and resolves once it answers. */
  async start(): Promise<void> {
    // With persistence, every write reaches the append-only file before its reply, so what was
    // acknowledged survives SIGKILL (with the default `everysec`, Redis may postpone the write and
    // lose the last second). Without it (and with no snapshots either), a restart is empty.
    const persistence = this.persistence ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', this.dir];
    const child = spawn(REDIS_SERVER, [...args, '--requirepass', this.password], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#process = child;
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${stderr}`);
      const ok = await withRedis(this.url, async (redis) => (await redis.ping()) === 'PONG').catch(() => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not answer within 10 s: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** SIGKILL: Redis vanishes at once, as in a crash. */
  async kill(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  async remove(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A TCP proxy in front of Redis: `cut()` drops its connections and refuses new ones until `restore()`. */
export class RedisProxy {
  readonly #sockets = new Set<Socket>();
  readonly #server = createServer((client) => this.#accept(client));
  #cut = false;
  port = 0;

  constructor(readonly target: URL) {}

  async start(): Promise<this> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  /** The target's url, through the proxy. */
  get url(): string {
    const url = new URL(this.target);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.href;
  }

  cut(): void {
    this.#cut = true;
    for (const socket of this.#sockets) socket.destroy();
  }

  restore(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    this.#server.close();
    await once(this.#server, 'close');
  }

  #accept(client: Socket): void {
    if (this.#cut) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(this.target.port || 6379), this.target.hostname);
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.#sockets.add(socket);
      socket.on('error', () => other.destroy());
      socket.on('close', () => {
        this.#sockets.delete(socket);
        other.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }
}

const INSTANCE = fileURLToPath(new URL('./backplanes/redis-instance.ts', import.meta.url));

/** A hub instance in a process of its own (tests/backplanes/redis-instance.ts). */
export interface InstanceProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Where it serves: `/events`, `/publish`, `/stats`. */
  readonly url: string;
  /** Its `hub.stats()`, over HTTP. */
  stats(): Promise<Record<string, number | boolean>>;
  /** Resumes it if it was stopped, asks it to close, and kills it if it does not within 3 s. */
  stop(): Promise<void>;
}

/**
 * Starts a hub instance on the Redis backplane in a child process (`node --import tsx`), with
 * `env` on top of this process's (REDIS_URL, KEY, HISTORY); resolves once it listens.
 */
export async function startInstanceProcess(env: Record<string, string>): Promise<InstanceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', INSTANCE], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    // A stopped process would neither close nor die of anything but SIGKILL: it resumes first.
    child.kill('SIGCONT');
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  try {
    const [message] = (await Promise.race([once(child, 'message'), once(child, 'exit')])) as [unknown];
    const url = (message as { url?: string } | null)?.url;
    if (url === undefined || child.pid === undefined) throw new Error(`the child instance exited before listening (${String(message)})`);
    return {
      child,
      pid: child.pid,
      url,
      stats: async () => (await (await fetch(`${url}/stats`, { signal: AbortSignal.timeout(5000) })).json()) as Record<string, number | boolean>,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
