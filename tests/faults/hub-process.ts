/**
 * A hub in a process of its own, so that the fault tests can measure its memory and CPU without
 * the test runner's own in the figures. Started by {@link startHubProcess} (below, imported by the
 * tests); run as a script, it is the child: a library hub (`createHub` + `hub.handler()` on
 * node:http) or the hub server (`createHubServer`), chosen by the HUB_PROCESS environment
 * variable (JSON: {@link HubProcessConfig}). It answers requests over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';

export interface HubProcessConfig {
  /** `library`: createHub() and hub.handler() on node:http. `server`: the hub server (serve-sse hub). */
  kind: 'library' | 'server';
  /** Hub options (library) or hub server options (server), as JSON. */
  options?: Record<string, unknown>;
  /** Options of `hub.handler()` (library only). */
  handler?: Record<string, unknown>;
}

export interface Memory {
  rss: number;
  /** heapUsed + external, after full collections. */
  heap: number;
}

type Request =
  | { op: 'publish'; topic: string | string[]; count: number; size: number }
  | { op: 'stats' }
  | { op: 'memory' }
  | { op: 'subscribe-cpu'; count: number; topics: string[]; lastEventId: string }
  | { op: 'close' };

// ---------------------------------------------------------------------------------------------
// The parent's side

export interface HubProcess {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:port`. */
  readonly url: string;
  /** Publishes `count` events of `size` bytes of data; resolves with their ids. */
  publish(topic: string | string[], count: number, size: number): Promise<string[]>;
  stats(): Promise<Record<string, number | boolean>>;
  /** RSS, and heap + external after full collections. */
  memory(): Promise<Memory>;
  /** CPU (µs) of `count` calls of hub.subscribe() on streams that resume from `lastEventId`. */
  subscribeCpu(count: number, topics: string[], lastEventId: string): Promise<number>;
  /** Closes the hub and waits for the process to exit; kills it if it does not within 5 s. */
  stop(): Promise<void>;
}

const SCRIPT = fileURLToPath(import.meta.url);

export async function startHubProcess(config: HubProcessConfig): Promise<HubProcess> {
  const child = fork(SCRIPT, [], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    env: { ...process.env, HUB_PROCESS: JSON.stringify(config) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  let next = 0;
  const pending = new Map<number, (value: unknown) => void>();
  child.on('message', (message: { reply?: number; value?: unknown }) => {
    if (message.reply === undefined) return;
    pending.get(message.reply)?.(message.value);
    pending.delete(message.reply);
  });
  const ask = <T>(request: Request): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++next;
      const timer = setTimeout(() => reject(new Error(`the hub process did not answer ${request.op} within 60 s`)), 60_000);
      pending.set(id, (value) => {
        clearTimeout(timer);
        resolve(value as T);
      });
      child.send({ id, ...request });
    });
  const [ready] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`the hub process exited (${String(code)}) before it listened`);
    }),
  ])) as [{ url: string }];
  return {
    child,
    url: ready.url,
    publish: (topic, count, size) => ask({ op: 'publish', topic, count, size }),
    stats: () => ask({ op: 'stats' }),
    memory: () => ask({ op: 'memory' }),
    subscribeCpu: (count, topics, lastEventId) => ask({ op: 'subscribe-cpu', count, topics, lastEventId }),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      // A stopped process (SIGSTOP in a test that failed half-way) would never answer.
      child.kill('SIGCONT');
      child.send({ id: 0, op: 'close' });
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The child's side

async function serveChild(config: HubProcessConfig): Promise<void> {
  const { createHub } = await import('../../src/index.js');
  let hub: import('../../src/index.js').Hub;
  let server: Server;
  if (config.kind === 'server') {
    const { createHubServer } = await import('../../src/server/server.js');
    const { pino } = await import('pino');
    const running = await createHubServer({ port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }), ...config.options });
    hub = running.hub;
    server = running.server;
  } else {
    hub = createHub({ logger: quiet, ...config.options });
    server = createServer(hub.handler(config.handler));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  }
  const gc = collector();
  const data = (size: number, n: number): string => `${n} `.padEnd(size, 'x');

  async function answer(request: Request): Promise<unknown> {
    switch (request.op) {
      case 'publish': {
        const ids: string[] = [];
        for (let n = 0; n < request.count; n++) ids.push(await hub.publish(request.topic, { data: data(request.size, n) }));
        return ids;
      }
      case 'stats':
        return hub.stats();
      case 'memory': {
        for (let round = 0; round < 3; round++) {
          gc();
          await new Promise((resolve) => setImmediate(resolve));
        }
        const { rss, heapUsed, external } = process.memoryUsage();
        return { rss, heap: heapUsed + external } satisfies Memory;
      }
      case 'subscribe-cpu': {
        const streams = Array.from({ length: request.count }, () => idleStream(request.lastEventId));
        const before = process.cpuUsage();
        for (const stream of streams) hub.subscribe(stream, request.topics);
        const used = process.cpuUsage(before);
        for (const stream of streams) stream.close();
        return used.user + used.system;
      }
      case 'close':
        await hub.close({ timeout: 500 });
        server.closeAllConnections();
        server.close();
        process.exit(0);
    }
  }

  process.on('message', (message: Request & { id: number }) => {
    void answer(message).then((value) => process.send!({ reply: message.id, value }));
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

const quiet = { error() {}, warn() {}, info() {}, debug() {} };

/** A stream that is not a connection: what `hub.subscribe()` gets from an app's own writer. */
function idleStream(lastEventId: string): import('../../src/index.js').SseStream {
  const abort = new AbortController();
  return {
    request: new Request('http://hub.invalid/'),
    lastEventId,
    signal: abort.signal,
    get closed() {
      return abort.signal.aborted;
    },
    dropped: 0,
    send: () => Promise.resolve(),
    comment: () => Promise.resolve(),
    write: () => Promise.resolve(),
    close: () => abort.abort(),
  };
}

function collector(): () => void {
  if (typeof globalThis.gc === 'function') return globalThis.gc;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

if (process.env.HUB_PROCESS !== undefined && process.send !== undefined) {
  await serveChild(JSON.parse(process.env.HUB_PROCESS) as HubProcessConfig);
}
