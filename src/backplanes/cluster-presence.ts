/**
 * Presence across the workers of a `node:cluster`, held by the primary: each worker's
 * {@link clusterPresence} sends its changes (batched, one message per turn of the event loop) to
 * the primary's store, which {@link clusterLog} runs; `list()` asks the primary, which answers
 * from every worker's entries. The channel is ordered, so a worker's own changes are in the
 * answer to any `list()` it makes after them. When a worker dies with entries (killed, crashed),
 * the primary hands them, once, to one surviving worker that listens (`onExpired`), or to the next
 * one that comes; a worker that closes its presence takes its entries out without a report. The
 * primary is never out of reach while its workers live, so `onRestored` is never called.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { postToPrimary } from './primary-channel.js';
import { listRefusal, matches, snapshot, type Presence, type PresenceEntry, type PresenceFilter } from './presence.js';

const TAG = 'serveSse';

type ToStore =
  | { [TAG]: 'presence'; op: 'changes'; set: PresenceEntry[]; remove: string[] }
  | { [TAG]: 'presence'; op: 'list'; request: number; filter?: PresenceFilter }
  | { [TAG]: 'presence'; op: 'listen' }
  | { [TAG]: 'presence'; op: 'close' };

type ToWorker =
  | { [TAG]: 'presence'; op: 'list'; request: number; entries: PresenceEntry[] }
  | { [TAG]: 'presence'; op: 'expired'; entries: PresenceEntry[] };

/** The primary's side, run by clusterLog(). @internal */
export interface PresenceStore {
  receive(worker: Worker, message: object): void;
  /** The worker exited: its entries, unless it closed its presence, are reported to a survivor. */
  gone(worker: Worker): void;
  close(): void;
}

/** Entries of dead workers waiting for a listener: bounded, so a cluster with none keeps no garbage. */
const UNREPORTED_LIMIT = 100_000;

/** @internal */
export function servePresence(send: (worker: Worker, message: ToWorker) => void): PresenceStore {
  const byWorker = new Map<number, Map<string, PresenceEntry>>();
  /** Workers that report dead workers' entries, in the order they asked. */
  const listeners = new Map<number, Worker>();
  let unreported: PresenceEntry[] = [];

  function report(entries: PresenceEntry[]): void {
    const [survivor] = listeners.values();
    if (survivor === undefined) {
      unreported = [...unreported, ...entries].slice(-UNREPORTED_LIMIT);
      return;
    }
    send(survivor, { [TAG]: 'presence', op: 'expired', entries });
  }

  return {
    receive(worker, message) {
      const request = message as ToStore;
      switch (request.op) {
        case 'changes': {
          let entries = byWorker.get(worker.id);
          if (entries === undefined) byWorker.set(worker.id, (entries = new Map()));
          for (const id of request.remove) entries.delete(id);
          for (const entry of request.set) entries.set(entry.id, entry);
          if (entries.size === 0) byWorker.delete(worker.id);
          return;
        }
        case 'list': {
          const found: PresenceEntry[] = [];
          for (const entries of byWorker.values()) {
            if (request.filter?.id !== undefined) {
              const entry = entries.get(request.filter.id);
              if (entry !== undefined && matches(entry, request.filter)) found.push(entry);
            } else for (const entry of entries.values()) if (matches(entry, request.filter)) found.push(entry);
          }
          send(worker, { [TAG]: 'presence', op: 'list', request: request.request, entries: found });
          return;
        }
        case 'listen':
          listeners.set(worker.id, worker);
          if (unreported.length > 0) {
            const entries = unreported;
            unreported = [];
            send(worker, { [TAG]: 'presence', op: 'expired', entries });
          }
          return;
        case 'close':
          byWorker.delete(worker.id);
          listeners.delete(worker.id);
          return;
      }
    },
    gone(worker) {
      listeners.delete(worker.id);
      const entries = byWorker.get(worker.id);
      byWorker.delete(worker.id);
      if (entries !== undefined && entries.size > 0) report([...entries.values()]);
    },
    close() {
      byWorker.clear();
      listeners.clear();
      unreported = [];
    },
  };
}

export interface ClusterPresenceOptions {
  /** Milliseconds to wait for the primary's answer to `list()`. Default 5000. */
  timeout?: number;
}

/**
 * A worker's presence, shared with every worker of the cluster through the primary's
 * `clusterLog()` (which holds the entries). See the module's comment for the guarantees.
 * @throws TypeError outside a cluster worker
 */
export function clusterPresence(options: ClusterPresenceOptions = {}): Presence {
  const { timeout = 5000 } = options;
  if (!(Number.isFinite(timeout) && timeout > 0)) throw new TypeError(`serve-sse: clusterPresence option timeout must be a positive number of milliseconds; got ${String(timeout)}`);
  if (!cluster.isWorker || process.send === undefined) throw new TypeError('serve-sse: clusterPresence() runs in a node:cluster worker; the primary runs clusterLog()');
  const instance = randomUUID();
  /** Changes since the last message: an entry to set, or null to remove. */
  const changes = new Map<string, PresenceEntry | null>();
  let flushing: ReturnType<typeof setImmediate> | undefined;
  const lists = new Map<number, { resolve(entries: PresenceEntry[]): void; reject(error: Error): void; timer: ReturnType<typeof setTimeout> }>();
  const expiredListeners: Array<(entries: PresenceEntry[]) => void> = [];
  let nextRequest = 0;
  let closed = false;

  const post = (message: ToStore, failed?: (error: Error) => void): void => postToPrimary(message, failed);

  function flush(): void {
    if (flushing !== undefined) clearImmediate(flushing);
    flushing = undefined;
    if (changes.size === 0) return;
    const set: PresenceEntry[] = [];
    const remove: string[] = [];
    for (const [id, entry] of changes) {
      if (entry === null) remove.push(id);
      else set.push(entry);
    }
    changes.clear();
    post({ [TAG]: 'presence', op: 'changes', set, remove });
  }

  function change(id: string, entry: PresenceEntry | null): void {
    if (closed) return;
    changes.set(id, entry);
    flushing ??= setImmediate(flush);
  }

  const onMessage = (message: unknown): void => {
    if (message === null || typeof message !== 'object' || (message as Record<string, unknown>)[TAG] !== 'presence' || closed) return;
    const reply = message as ToWorker;
    if (reply.op === 'list') {
      const pending = lists.get(reply.request);
      if (pending === undefined) return;
      lists.delete(reply.request);
      clearTimeout(pending.timer);
      pending.resolve(reply.entries);
    } else if (reply.op === 'expired') {
      for (const listener of expiredListeners) listener(reply.entries);
    }
  };
  const onDisconnect = (): void => {
    for (const pending of lists.values()) {
      clearTimeout(pending.timer);
      pending.reject(new Error("serve-sse: the cluster's primary process is gone"));
    }
    lists.clear();
  };
  process.on('message', onMessage);
  process.on('disconnect', onDisconnect);

  return {
    instance,
    add(entry) {
      const copy = snapshot(entry).entry;
      change(copy.id, copy);
    },
    remove(id) {
      change(id, null);
    },
    list(filter) {
      const refused = listRefusal(filter, closed);
      if (refused !== undefined) return Promise.reject(refused);
      // This worker's own changes reach the primary before the question.
      flush();
      const request = ++nextRequest;
      return new Promise<PresenceEntry[]>((resolve, reject) => {
        const timer = setTimeout(() => {
          lists.delete(request);
          reject(new Error(`serve-sse: the cluster's primary did not list the subscriptions within ${timeout} ms`));
        }, timeout);
        lists.set(request, { resolve, reject, timer });
        const question: ToStore = filter === undefined ? { [TAG]: 'presence', op: 'list', request } : { [TAG]: 'presence', op: 'list', request, filter: { ...filter } };
        post(question, (error) => {
          clearTimeout(timer);
          lists.delete(request);
          reject(new Error(`serve-sse: could not reach the cluster's primary: ${error.message}`));
        });
      });
    },
    onExpired(listener) {
      expiredListeners.push(listener);
      if (expiredListeners.length === 1) post({ [TAG]: 'presence', op: 'listen' });
    },
    onRestored() {},
    close() {
      if (closed) return Promise.resolve();
      changes.clear();
      if (flushing !== undefined) clearImmediate(flushing);
      closed = true;
      // A graceful stop is not a death: the entries leave without an "ended" report.
      post({ [TAG]: 'presence', op: 'close' });
      onDisconnect();
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      return Promise.resolve();
    },
  };
}
