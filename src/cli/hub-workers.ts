/**
 * `serve-sse hub --workers N`: a primary process forks N workers (node:cluster), which share the
 * listening port (the primary accepts the connections and hands them out in turn) and one log:
 * Redis's with `--redis`, else the primary's own (clusterLog(), src/backplanes/cluster.ts).
 *
 * The primary serves no request. It starts the workers and says "serve-sse hub listening" once
 * every one listens; a worker that cannot start (a port in use) makes it print that one line and
 * exit 1. A worker that dies later is logged and started again, after a pause that doubles with
 * each death (100 ms to 5 s); one that dies {@link MAX_RESTARTS} times within
 * {@link RESTART_WINDOW_MS} is left dead, and when none is left the primary exits 1. SIGTERM or
 * SIGINT tells every worker to drain (each sends its clients the retry hint and ends their
 * streams, as a single process does); the primary exits 0 once they are gone, or once the
 * shutdown timeout and its grace have passed (cutting what is left). A second signal exits at once.
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { clusterLog } from '../backplanes/cluster.js';
import { StartupError } from '../server/backplane.js';
import type { HubServerConfig } from '../server/config.js';
import type { Family } from '../server/http/metrics.js';
import { createHubServer } from '../server/server.js';
import { hubMessage, relayReports, toPrimary, toWorker } from '../server/workers.js';

/** Set by the primary in each worker's environment: its number, 1 to N, kept across restarts. */
const SLOT_VARIABLE = 'SERVE_SSE_WORKER_SLOT';
/** Beyond the shutdown timeout, how long a process waits before exiting regardless. */
export const EXIT_GRACE = 2000;
/** A worker that dies this often within the window is not started again. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
const MAX_RESTART_DELAY_MS = 5000;

/** This process's worker number, when the hub's primary forked it. */
export function workerSlot(): number | undefined {
  if (!cluster.isWorker) return undefined;
  const slot = Number(process.env[SLOT_VARIABLE]);
  return Number.isSafeInteger(slot) && slot > 0 ? slot : undefined;
}

interface Slot {
  readonly number: number;
  worker: Worker | undefined;
  listening: boolean;
  /** When it died lately (within the window), for the restart bound. */
  deaths: number[];
  restart: ReturnType<typeof setTimeout> | undefined;
  /** Given up on: it died too often. */
  abandoned: boolean;
}

/** `args`: the hub's own (after `hub`), which every worker is started with. */
export function runPrimary(config: HubServerConfig, args: readonly string[]): void {
  // Workers run serve-sse's own bin with the same flags, whatever started the primary (the
  // serve-sse-hub wrapper, which adds `hub` to its arguments, say). The environment is inherited.
  cluster.setupPrimary({ exec: fileURLToPath(new URL('./main.js', import.meta.url)), args: ['hub', ...args] });
  const log = pino({ name: 'serve-sse-hub', level: config.logLevel }).child({ worker: 0 });
  // Without Redis the primary is the log, and holds every worker's Mercure subscriptions.
  const shared = config.redis === undefined ? clusterLog({ history: config.history, logger: log }) : undefined;
  const slots: Slot[] = Array.from({ length: config.workers }, (_, index) => ({
    number: index + 1,
    worker: undefined,
    listening: false,
    deaths: [],
    restart: undefined,
    abandoned: false,
  }));
  const byId = new Map<number, Slot>();
  let url: string | undefined;
  let started = false;
  let stopping = false;
  let failed = false;
  let restarts = 0;

  const live = (): Worker[] => slots.flatMap((slot) => (slot.worker === undefined ? [] : [slot.worker]));
  relayReports(live, (): Family[] => [
    { name: 'serve_sse_workers', type: 'gauge', help: 'Worker processes listening (serve-sse hub --workers).', samples: [['', slots.filter((slot) => slot.listening).length]] },
    { name: 'serve_sse_worker_restarts_total', type: 'counter', help: 'Workers started again after they died.', samples: [['', restarts]] },
  ]);

  function fork(slot: Slot): void {
    slot.restart = undefined;
    const worker = cluster.fork({ [SLOT_VARIABLE]: String(slot.number) });
    slot.worker = worker;
    byId.set(worker.id, slot);
  }

  /** Before every worker listened: one line, every worker gone, exit 1. */
  function failStart(message: string): void {
    if (failed) return;
    failed = true;
    process.stderr.write(`serve-sse hub: ${message}\n`);
    for (const worker of live()) worker.process.kill('SIGKILL');
    process.exit(1);
  }

  cluster.on('message', (worker, message) => {
    const said = hubMessage(message);
    const slot = byId.get(worker.id);
    if (said === undefined || slot === undefined) return;
    if (said.op === 'listening') {
      slot.listening = true;
      url ??= said.url;
      if (!started && slots.every((each) => each.listening)) {
        started = true;
        const port = Number(new URL(url).port);
        log.info({ url, port, workers: config.workers, redis: config.redis !== undefined, pids: live().map((each) => each.process.pid) }, 'serve-sse hub listening');
      }
    } else if (said.op === 'failed') {
      if (!started) failStart(said.message);
      else log.error({ worker: slot.number, error: said.message }, 'a restarted worker could not start');
    }
  });

  cluster.on('exit', (worker, code, signal) => {
    closeLostConnection(worker);
    const slot = byId.get(worker.id);
    byId.delete(worker.id);
    if (slot === undefined) return;
    slot.worker = undefined;
    slot.listening = false;
    if (stopping) {
      if (live().length === 0) finish();
      return;
    }
    if (!started) return failStart(`worker ${slot.number} exited (${signal ?? `code ${code}`}) before it listened`);
    const now = Date.now();
    slot.deaths = [...slot.deaths.filter((time) => now - time < RESTART_WINDOW_MS), now];
    if (slot.deaths.length > MAX_RESTARTS) {
      slot.abandoned = true;
      log.fatal({ worker: slot.number, pid: worker.process.pid, code, signal, deaths: slot.deaths.length, windowMs: RESTART_WINDOW_MS }, 'worker keeps dying; not starting it again');
      if (slots.every((each) => each.abandoned)) {
        log.fatal({}, 'every worker keeps dying; exiting');
        process.exit(1);
      }
      return;
    }
    const delay = Math.min(100 * 2 ** (slot.deaths.length - 1), MAX_RESTART_DELAY_MS);
    log.error({ worker: slot.number, pid: worker.process.pid, code, signal, restartInMs: delay }, 'worker died; starting it again');
    slot.restart = setTimeout(() => {
      restarts++;
      fork(slot);
    }, delay);
  });

  function finish(): void {
    shared?.close();
    log.info({}, 'stopped');
    process.exit(0);
  }

  const stop = (): void => {
    if (stopping) {
      process.stderr.write('serve-sse hub: second signal, exiting at once\n');
      for (const worker of live()) worker.process.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    for (const slot of slots) clearTimeout(slot.restart);
    const workers = live();
    log.info({ workers: workers.length, retry: config.shutdownRetry }, 'shutting down');
    if (workers.length === 0) return finish();
    for (const worker of workers) toWorker(worker, { serveSse: 'hub', op: 'shutdown' });
    // Each worker bounds its own drain by the same timeout and grace; this one is the backstop.
    setTimeout(() => {
      const left = live();
      if (left.length > 0) log.warn({ workers: left.length }, 'workers still running after the shutdown timeout; killing them');
      for (const worker of left) worker.process.kill('SIGKILL');
      finish();
    }, config.shutdownTimeout + EXIT_GRACE + 500).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  for (const slot of slots) fork(slot);
}

/**
 * The connection the primary was handing to a worker when it died. Node sends a worker one
 * connection at a time and keeps its own copy until the worker acknowledges it; a worker killed in
 * between never does, and Node never closes that copy (nodejs/node-v0.x-archive#7006: the client
 * would wait for an answer for ever). Closed here, the client sees its connection end and retries.
 * It reads a Node internal, checked at every step: without it, nothing happens.
 */
function closeLostConnection(worker: Worker): void {
  const pending = (worker.process as unknown as { _pendingMessage?: { handle?: { close?: () => void } } | null })._pendingMessage;
  if (typeof pending?.handle?.close !== 'function') return;
  try {
    pending.handle.close();
  } catch {
    // Closed already.
  }
}

/** A worker: the hub server on the shared port, drained on the primary's word or on a signal. */
export async function runWorker(config: HubServerConfig, slot: number): Promise<void> {
  let running;
  try {
    running = await createHubServer({ ...config, worker: slot });
  } catch (error) {
    const message = error instanceof StartupError ? error.message : `cannot start: ${(error as Error).message}`;
    // The primary prints it (once, whichever worker failed); then this worker goes.
    const exit = (): never => process.exit(1);
    setTimeout(exit, 1000).unref();
    if (!process.connected) exit();
    process.send!({ serveSse: 'hub', op: 'failed', message }, undefined, undefined, exit);
    return;
  }
  toPrimary({ serveSse: 'hub', op: 'listening', url: running.url });

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), config.shutdownTimeout + EXIT_GRACE).unref();
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`serve-sse hub: worker ${slot}: shutdown failed: ${(error as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  let signals = 0;
  const onSignal = (): void => {
    // A terminal's Ctrl-C reaches every process of the group: the first drains, as the primary's word does.
    if (++signals > 1) process.exit(1);
    stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('message', (message) => {
    if (hubMessage(message)?.op === 'shutdown') stop();
  });
  // A primary that dies takes its workers along: node:cluster exits a worker whose channel closes.
}
