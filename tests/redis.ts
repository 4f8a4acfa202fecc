/**
 * What every Redis test shares: whether Redis (and redis-server, for fault tests) is there, keys
 * that no two tests share and that are deleted afterwards, a redis-server of the test's own, and a
 * TCP proxy that cuts one instance off from Redis.
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
import { Redis } from 'ioredis';

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

/** Stream keys for one test file, each used once; `cleanUp()` deletes them all, and nothing else. */
export class TestKeys {
  readonly #keys: Array<{ key: string; url: string }> = [];

  key(url = REDIS_URL): string {
    const key = `serve-sse-test:${randomUUID()}`;
    this.#keys.push({ key, url });
    return key;
  }

  async cleanUp(): Promise<void> {
    const byUrl = new Map<string, string[]>();
    for (const { key, url } of this.#keys.splice(0)) byUrl.set(url, [...(byUrl.get(url) ?? []), key]);
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

/** A redis-server of the test's own, its data in a temporary directory that outlives a kill. */
export class OwnRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'serve-sse-redis-'));
  #process: ChildProcess | undefined;

  constructor(
    readonly port: number,
    readonly password: string,
  ) {}

  get url(): string {
    return `redis://:${this.password}@127.0.0.1:${this.port}`;
  }

  /** Starts it (again) on its port and directory, and resolves once it answers. */
  async start(): Promise<void> {
    // Every write reaches the append-only file before its reply, so what was acknowledged survives
    // SIGKILL (with the default `everysec`, Redis may postpone the write and lose the last second).
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir];
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
