/**
 * `serve-sse/cluster`: one hub over the worker processes of a `node:cluster`, without Redis. The
 * primary process holds the log ({@link clusterLog}): it numbers every entry a worker appends,
 * keeps the last `history` of them, and sends each one to every worker, in order, over the
 * cluster's IPC channel. Each worker's hub runs on a {@link clusterBackplane}: it appends through
 * the primary and hears every entry back, its own included, in the primary's order, so ids, order
 * and replay agree on every worker, and a client may reconnect to any of them. A worker that
 * starts (or restarts) gets the kept entries first, oldest first, before its clients join.
 *
 * The channel is reliable and ordered, so while the primary lives no worker misses an entry: there
 * are no gaps to report. Ids are those of the memory backplane, `<epoch>-<seq>`, the epoch being
 * the primary's start: the ids of an earlier primary are `unknown` to the workers of a new one.
 *
 * Presence (who is subscribed, for Mercure's active subscriptions) goes through the primary too:
 * see ./cluster-presence.ts.
 */
import cluster, { type Worker } from 'node:cluster';
import { consoleLogger, type Logger } from '../logger.js';
import type { Backplane, EntryMeta, LogEntry, LogListener } from './backplane.js';
import { servePresence, type PresenceStore } from './cluster-presence.js';
import { postToPrimary } from './primary-channel.js';

/** The variable through which the primary tells the workers it forks the epoch of its log. */
export const EPOCH_VARIABLE = 'SERVE_SSE_CLUSTER_EPOCH';

/** What every message of ours carries, so that an app's own messages on the channel are left alone. */
const TAG = 'serveSse';

/** An entry on the channel: `[seq, time, topics, body, alias | null, private ? 1 : 0]`. */
type WireEntry = [seq: number, time: number, topics: readonly string[], body: string, alias: string | null, isPrivate: 0 | 1];
/** An append on the channel: `[request, topics, body, alias | null, private ? 1 : 0]`. */
type WireAppend = [request: number, topics: readonly string[], body: string, alias: string | null, isPrivate: 0 | 1];

/** Worker to primary. */
type ToPrimary =
  | { [TAG]: 'log'; op: 'open'; history: number }
  | { [TAG]: 'log'; op: 'append'; appends: WireAppend[] }
  | { [TAG]: 'log'; op: 'head'; request: number }
  | { [TAG]: 'log'; op: 'close' };

/** Primary to worker. */
type ToWorker =
  | { [TAG]: 'log'; op: 'opened'; entries: WireEntry[] }
  /** New entries, in log order, then which of this worker's appends they were (`[request, seq]`). */
  | { [TAG]: 'log'; op: 'entries'; entries: WireEntry[]; acks?: Array<[request: number, seq: number]> }
  | { [TAG]: 'log'; op: 'head'; request: number; seq: number };

export interface ClusterLogOptions {
  /**
   * Entries the primary keeps for workers that start or restart: they get them on open, so that
   * a client resumes on any worker. Give it the workers' hub `history`. Default 1000.
   */
  history?: number;
  /** Where the primary reports trouble with a worker's channel. Default: the console. */
  logger?: Logger;
}

export interface ClusterLog {
  /** The epoch of the log's ids (`<epoch>-<seq>`): the primary's start, in ms. */
  readonly epoch: number;
  /** Entries appended so far. */
  readonly appended: number;
  /** The id of the newest entry, if any. */
  readonly lastId: string | undefined;
  /** Workers whose backplane is open. */
  readonly workers: number;
  /** Stops serving the workers (their appends then go unanswered). */
  close(): void;
}

let active: ClusterLog | undefined;

/**
 * The log of a cluster's hub, in the primary process. Call it before forking: the workers learn
 * the log's epoch from their environment (it sets {@link EPOCH_VARIABLE} in this process's, which
 * `cluster.fork()` passes on). One per primary. It also serves the workers' `clusterPresence()`.
 * @throws Error outside the primary, or when a log is already running
 */
export function clusterLog(options: ClusterLogOptions = {}): ClusterLog {
  if (!cluster.isPrimary) throw new Error('serve-sse: clusterLog() runs in the primary process; its workers use clusterBackplane()');
  if (active !== undefined) throw new Error('serve-sse: a cluster log is already running in this process (one per primary)');
  const { history = 1000, logger = consoleLogger } = options;
  if (!Number.isSafeInteger(history) || history < 0) throw new TypeError(`serve-sse: clusterLog option history must be a non-negative integer; got ${String(history)}`);
  const log = new PrimaryLog(history, logger);
  active = log;
  return log;
}

class PrimaryLog implements ClusterLog {
  readonly epoch: number;
  /** The last entries: a ring of `capacity`, one more than `history` (the id before the oldest kept is one a client may hold). */
  readonly #ring: Array<WireEntry | undefined>;
  #start = 0;
  #size = 0;
  #seq = 0;
  /** Workers whose backplane is open, by cluster id: they get every new entry. */
  readonly #members = new Map<number, Worker>();
  /** Numbered, not yet sent. */
  #pending: WireEntry[] = [];
  readonly #acks = new Map<number, Array<[number, number]>>();
  #flushing: ReturnType<typeof setImmediate> | undefined;
  readonly #presence: PresenceStore;
  readonly #logger: Logger;
  #closed = false;

  constructor(history: number, logger: Logger) {
    // Ids carry it: a restarted primary's must order after (and differ from) its predecessor's.
    this.epoch = Date.now();
    this.#ring = new Array<WireEntry | undefined>(history + 1);
    this.#logger = logger;
    process.env[EPOCH_VARIABLE] = String(this.epoch);
    this.#presence = servePresence((worker, message) => this.#send(worker, message));
    cluster.on('message', this.#onMessage);
    cluster.on('exit', this.#onExit);
  }

  get appended(): number {
    return this.#seq;
  }

  get lastId(): string | undefined {
    return this.#seq === 0 ? undefined : `${this.epoch}-${this.#seq}`;
  }

  get workers(): number {
    return this.#members.size;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#flush();
    cluster.off('message', this.#onMessage);
    cluster.off('exit', this.#onExit);
    this.#members.clear();
    this.#presence.close();
    if (active === this) active = undefined;
  }

  readonly #onMessage = (worker: Worker, message: unknown): void => {
    if (message === null || typeof message !== 'object') return;
    const tag = (message as Record<string, unknown>)[TAG];
    if (tag === 'presence') return this.#presence.receive(worker, message);
    if (tag !== 'log') return;
    const request = message as ToPrimary;
    switch (request.op) {
      case 'open': {
        // What is numbered but unsent goes out first, to the workers that were there: the history
        // below holds it, and the new member must not hear it twice.
        this.#flush();
        const wanted = Math.min(this.#size, Math.max(0, Math.floor(request.history)) + 1);
        const entries: WireEntry[] = [];
        for (let index = this.#size - wanted; index < this.#size; index++) entries.push(this.#ring[(this.#start + index) % this.#ring.length]!);
        this.#members.set(worker.id, worker);
        this.#send(worker, { [TAG]: 'log', op: 'opened', entries });
        return;
      }
      case 'append':
        for (const [number, topics, body, alias, isPrivate] of request.appends) {
          const entry: WireEntry = [++this.#seq, Date.now(), topics, body, alias, isPrivate];
          this.#keep(entry);
          this.#pending.push(entry);
          let acks = this.#acks.get(worker.id);
          if (acks === undefined) this.#acks.set(worker.id, (acks = []));
          acks.push([number, entry[0]]);
        }
        // One message per worker for everything appended in this turn of the event loop.
        this.#flushing ??= setImmediate(() => this.#flush());
        return;
      case 'head':
        this.#flush();
        this.#send(worker, { [TAG]: 'log', op: 'head', request: request.request, seq: this.#seq });
        return;
      case 'close':
        this.#flush();
        this.#members.delete(worker.id);
        return;
    }
  };

  readonly #onExit = (worker: Worker): void => {
    this.#members.delete(worker.id);
    this.#acks.delete(worker.id);
    this.#presence.gone(worker);
  };

  #keep(entry: WireEntry): void {
    const capacity = this.#ring.length;
    if (this.#size < capacity) {
      this.#ring[(this.#start + this.#size++) % capacity] = entry;
    } else {
      this.#ring[this.#start] = entry;
      this.#start = (this.#start + 1) % capacity;
    }
  }

  /** Sends what was numbered since the last flush to every member, in order, with each its acks. */
  #flush(): void {
    if (this.#flushing !== undefined) clearImmediate(this.#flushing);
    this.#flushing = undefined;
    if (this.#pending.length === 0) return;
    const entries = this.#pending;
    this.#pending = [];
    for (const [id, worker] of this.#members) {
      const acks = this.#acks.get(id);
      this.#send(worker, acks === undefined ? { [TAG]: 'log', op: 'entries', entries } : { [TAG]: 'log', op: 'entries', entries, acks });
    }
    // A worker that appended without being open (or after closing) hears nothing back: it is gone.
    this.#acks.clear();
  }

  #send(worker: Worker, message: unknown): void {
    if (!worker.isConnected()) return;
    try {
      worker.send(message as ToWorker, undefined, (error: Error | null) => {
        if (error !== null && worker.isConnected()) this.#logger.warn({ worker: worker.id, err: error }, 'serve-sse: could not send to a cluster worker');
      });
    } catch (error) {
      this.#logger.warn({ worker: worker.id, err: error }, 'serve-sse: could not send to a cluster worker');
    }
  }
}

export interface ClusterBackplaneOptions {
  /** Milliseconds to wait for the primary to answer the open (with its history) and each `head()`. Default 5000. */
  timeout?: number;
}

/**
 * The backplane of a worker's hub: the log is the primary's {@link clusterLog}. Appends resolve
 * once this worker has heard the entry back, as with the memory backplane.
 * @throws TypeError outside a cluster worker, or in one forked before the primary made its log
 */
export function clusterBackplane(options: ClusterBackplaneOptions = {}): Backplane {
  return new WorkerLog(options);
}

interface Pending {
  resolve(id: string): void;
  reject(error: Error): void;
}

class WorkerLog implements Backplane {
  readonly origin: string;
  readonly #epoch: string;
  readonly #timeout: number;
  #listener: LogListener | undefined;
  #closed = false;
  #opened = false;
  #nextRequest = 0;
  /** Appends not yet sent: one message per turn of the event loop. */
  #outgoing: WireAppend[] = [];
  #sending: ReturnType<typeof setImmediate> | undefined;
  readonly #appends = new Map<number, Pending>();
  readonly #heads = new Map<number, { resolve(seq: number): void; reject(error: Error): void; timer: ReturnType<typeof setTimeout> }>();
  #settleOpen: ((error?: Error) => void) | undefined;
  /** The open timed out: the history, if it comes, would reach live clients as new events. */
  #late = false;

  constructor(options: ClusterBackplaneOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('serve-sse: clusterBackplane options must be an object');
    const { timeout = 5000 } = options;
    if (!(Number.isFinite(timeout) && timeout > 0)) throw new TypeError(`serve-sse: clusterBackplane option timeout must be a positive number of milliseconds; got ${String(timeout)}`);
    if (!cluster.isWorker || process.send === undefined) throw new TypeError('serve-sse: clusterBackplane() runs in a node:cluster worker; the primary runs clusterLog()');
    const epoch = process.env[EPOCH_VARIABLE];
    if (epoch === undefined || !/^\d{1,20}$/.test(epoch)) {
      throw new TypeError(`serve-sse: this worker has no cluster log to join (${EPOCH_VARIABLE} is not set): call clusterLog() in the primary before cluster.fork()`);
    }
    this.#epoch = epoch;
    this.#timeout = timeout;
    this.origin = `${epoch}-0`;
  }

  get connected(): boolean {
    return this.#opened && !this.#closed && process.connected;
  }

  open(listener: LogListener, history: number): Promise<void> {
    if (this.#listener !== undefined) return Promise.reject(new Error('serve-sse: this cluster backplane is already open; each hub needs its own'));
    this.#listener = listener;
    process.on('message', this.#onMessage);
    process.on('disconnect', this.#onDisconnect);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#late = true;
        this.#settleOpen?.(new Error(`serve-sse: the cluster's primary did not answer within ${this.#timeout} ms (is clusterLog() running there?); serving without the shared history`));
      }, this.#timeout);
      this.#settleOpen = (error) => {
        this.#settleOpen = undefined;
        clearTimeout(timer);
        if (error === undefined) resolve();
        else reject(error);
      };
      this.#post({ [TAG]: 'log', op: 'open', history }, (error) => this.#settleOpen?.(error));
    });
  }

  append(topics: readonly string[], body: string, meta: EntryMeta = {}): Promise<string> {
    if (this.#listener === undefined || this.#closed) return Promise.reject(new Error('serve-sse: the cluster backplane is not open'));
    if (!process.connected) return Promise.reject(new Error("serve-sse: the cluster's primary process is gone; the event was not published"));
    const request = ++this.#nextRequest;
    this.#outgoing.push([request, topics, body, meta.alias ?? null, meta.private === true ? 1 : 0]);
    this.#sending ??= setImmediate(() => this.#sendAppends());
    return new Promise<string>((resolve, reject) => this.#appends.set(request, { resolve, reject }));
  }

  /** A log id of this primary's that this worker has not heard yet is one it is about to hear. */
  mayBeAhead(id: string): boolean {
    const dash = id.indexOf('-');
    return dash > 0 && id.slice(0, dash) === this.#epoch && /^\d{1,20}$/.test(id.slice(dash + 1));
  }

  head(): Promise<string | undefined> {
    if (this.#closed || !process.connected) return Promise.reject(new Error("serve-sse: the cluster's primary process is gone"));
    // Appends queued here go first: the head then counts them.
    this.#sendAppends();
    const request = ++this.#nextRequest;
    return new Promise<string | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#heads.delete(request);
        reject(new Error(`serve-sse: the cluster's primary did not answer within ${this.#timeout} ms`));
      }, this.#timeout);
      this.#heads.set(request, { resolve: (seq) => resolve(seq === 0 ? undefined : `${this.#epoch}-${seq}`), reject, timer });
      this.#post({ [TAG]: 'log', op: 'head', request }, (error) => {
        if (error === undefined) return;
        clearTimeout(timer);
        this.#heads.delete(request);
        reject(error);
      });
    });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#sendAppends();
    this.#closed = true;
    this.#settleOpen?.();
    if (process.connected && this.#listener !== undefined) this.#post({ [TAG]: 'log', op: 'close' });
    this.#stop(new Error('serve-sse: the hub closed before the primary confirmed the event (it may or may not be in the log)'));
    return Promise.resolve();
  }

  readonly #onMessage = (message: unknown): void => {
    if (message === null || typeof message !== 'object' || (message as Record<string, unknown>)[TAG] !== 'log' || this.#closed) return;
    const reply = message as ToWorker;
    switch (reply.op) {
      case 'opened':
        if (this.#late) {
          // The hub serves already: old entries would reach its clients as new. What its clients
          // missed before now cannot be replayed.
          if (reply.entries.length > 0) this.#listener?.lost();
        } else {
          for (const entry of reply.entries) this.#deliver(entry);
        }
        this.#opened = true;
        this.#settleOpen?.();
        return;
      case 'entries':
        for (const entry of reply.entries) this.#deliver(entry);
        for (const [request, seq] of reply.acks ?? []) {
          const pending = this.#appends.get(request);
          this.#appends.delete(request);
          pending?.resolve(`${this.#epoch}-${seq}`);
        }
        return;
      case 'head': {
        const pending = this.#heads.get(reply.request);
        if (pending === undefined) return;
        this.#heads.delete(reply.request);
        clearTimeout(pending.timer);
        pending.resolve(reply.seq);
        return;
      }
    }
  };

  readonly #onDisconnect = (): void => {
    this.#settleOpen?.(new Error("serve-sse: the cluster's primary process is gone"));
    this.#stop(new Error("serve-sse: the cluster's primary process went away before it confirmed the event (it may or may not have reached the other workers)"));
  };

  #deliver([seq, time, topics, body, alias, isPrivate]: WireEntry): void {
    const id = `${this.#epoch}-${seq}`;
    const entry: LogEntry =
      alias === null && isPrivate === 0
        ? { id, topics, body, time }
        : { id, topics, body, time, ...(alias === null ? {} : { alias }), ...(isPrivate === 1 ? { private: true } : {}) };
    this.#listener?.receive(entry);
  }

  #sendAppends(): void {
    if (this.#sending !== undefined) clearImmediate(this.#sending);
    this.#sending = undefined;
    if (this.#outgoing.length === 0) return;
    const appends = this.#outgoing;
    this.#outgoing = [];
    this.#post({ [TAG]: 'log', op: 'append', appends }, (error) => {
      if (error === undefined) return;
      for (const [request] of appends) {
        const pending = this.#appends.get(request);
        this.#appends.delete(request);
        pending?.reject(new Error(`serve-sse: could not reach the cluster's primary; the event was not published: ${error.message}`));
      }
    });
  }

  #post(message: ToPrimary, failed?: (error: Error | undefined) => void): void {
    postToPrimary(message, failed);
  }

  #stop(error: Error): void {
    if (this.#sending !== undefined) clearImmediate(this.#sending);
    this.#sending = undefined;
    this.#outgoing = [];
    for (const pending of this.#appends.values()) pending.reject(error);
    this.#appends.clear();
    for (const pending of this.#heads.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.#heads.clear();
    if (this.#closed) {
      process.off('message', this.#onMessage);
      process.off('disconnect', this.#onDisconnect);
    }
  }
}

export { clusterPresence, type ClusterPresenceOptions } from './cluster-presence.js';

