/**
 * What the workers of `serve-sse hub --workers N` and their primary say to each other beyond the
 * log (src/backplanes/cluster.ts): start-up and shutdown (used by src/cli/hub-workers.ts), and the
 * figures behind `/metrics`. Whichever worker a scrape lands on asks the primary, which asks every
 * worker for its figures and hands them back; the answer holds every worker's samples, each with a
 * `worker` label, and the primary's own (workers alive, restarts), so that one scrape through the
 * shared port sees the whole hub.
 */
import cluster, { type Worker } from 'node:cluster';
import { mergeFamilies, renderFamilies, type Family } from './http/metrics.js';

const TAG = 'serveSse';

/** One worker's figures. */
export interface WorkerReport {
  worker: number;
  families: Family[];
}

/** Between a worker and the primary, tagged `hub`. */
export type HubMessage =
  /** Worker: it listens (at `url`). */
  | { [TAG]: 'hub'; op: 'listening'; url: string }
  /** Worker: it could not start, and exits 1; `message` is the one line the bin prints. */
  | { [TAG]: 'hub'; op: 'failed'; message: string }
  /** Primary: drain and exit, as on SIGTERM. */
  | { [TAG]: 'hub'; op: 'shutdown' }
  /** Worker: a scrape wants every worker's figures. */
  | { [TAG]: 'hub'; op: 'gather'; request: number }
  /** Primary: send your figures. */
  | { [TAG]: 'hub'; op: 'report'; request: number }
  /** Worker: its figures. */
  | { [TAG]: 'hub'; op: 'reported'; request: number; report: WorkerReport }
  /** Primary: every worker's figures that came within the time allowed, and its own. */
  | { [TAG]: 'hub'; op: 'gathered'; request: number; reports: WorkerReport[]; primary: Family[] };

/** Whether `message` is one of ours. */
export function hubMessage(message: unknown): HubMessage | undefined {
  return message !== null && typeof message === 'object' && (message as Record<string, unknown>)[TAG] === 'hub' ? (message as HubMessage) : undefined;
}

/** Sends to the primary, quietly: a primary that is gone is noticed through 'disconnect'. */
export function toPrimary(message: HubMessage): void {
  if (!process.connected) return;
  try {
    process.send!(message, undefined, undefined, () => {});
  } catch {
    // The channel closed meanwhile.
  }
}

/** Sends to a worker, quietly: one that is gone is noticed through 'exit'. */
export function toWorker(worker: Worker, message: HubMessage): void {
  if (!worker.isConnected()) return;
  try {
    worker.send(message, undefined, () => {});
  } catch {
    // The channel closed meanwhile.
  }
}

/** How long the primary waits for the workers' figures, and a worker for the primary's answer. */
const GATHER_MS = 1000;

// ---------------------------------------------------------------------------------------------
// A worker's side

/** Answers the primary's calls for this worker's figures. @returns what stops it */
export function answerReports(worker: number, families: () => Family[]): () => void {
  const onMessage = (message: unknown): void => {
    const request = hubMessage(message);
    if (request?.op === 'report') toPrimary({ [TAG]: 'hub', op: 'reported', request: request.request, report: { worker, families: families() } });
  };
  process.on('message', onMessage);
  return () => process.off('message', onMessage);
}

let nextGather = 0;
/** Scrapes waiting for the primary's answer, by request number: one listener for all of them. */
const gathering = new Map<number, (value: Gathered | undefined) => void>();
type Gathered = { reports: WorkerReport[]; primary: Family[] };

function onGathered(message: unknown): void {
  const reply = hubMessage(message);
  if (reply?.op === 'gathered') gathering.get(reply.request)?.({ reports: reply.reports, primary: reply.primary });
}

/** Every worker's figures, through the primary; undefined when the primary does not answer in time. */
export function gatherReports(): Promise<Gathered | undefined> {
  if (!process.connected) return Promise.resolve(undefined);
  const request = ++nextGather;
  if (gathering.size === 0) process.on('message', onGathered);
  return new Promise((resolve) => {
    const done = (value: Gathered | undefined): void => {
      clearTimeout(timer);
      gathering.delete(request);
      if (gathering.size === 0) process.off('message', onGathered);
      resolve(value);
    };
    // The primary waits GATHER_MS for the workers: a little more here.
    const timer = setTimeout(() => done(undefined), GATHER_MS + 500);
    gathering.set(request, done);
    toPrimary({ [TAG]: 'hub', op: 'gather', request });
  });
}

/**
 * The `/metrics` text of a worker: every worker's samples with a `worker` label, then the
 * primary's; when the primary did not answer, this worker's alone.
 */
export function renderWorkerMetrics(worker: number, own: Family[], gathered: Gathered | undefined): string {
  const reports = gathered?.reports ?? [{ worker, families: own }];
  // This worker's figures are its freshest: the ones it just read.
  const others = reports.filter((report) => report.worker !== worker);
  const all = [...others, { worker, families: own }].sort((a, b) => a.worker - b.worker);
  return renderFamilies([...mergeFamilies(all.map((report) => ({ label: ['worker', String(report.worker)] as [string, string], families: report.families }))), ...(gathered?.primary ?? [])]);
}

// ---------------------------------------------------------------------------------------------
// The primary's side

/**
 * Serves the workers' `gather` calls: asks every live worker for its figures, waits for them (at
 * most {@link GATHER_MS}), and answers with them and `primary()`, the primary's own figures.
 * @returns what stops it
 */
export function relayReports(live: () => Worker[], primary: () => Family[]): () => void {
  let nextRound = 0;
  const rounds = new Map<number, { waiting: Set<number>; reports: WorkerReport[]; finish(): void }>();
  const onMessage = (worker: Worker, message: unknown): void => {
    const request = hubMessage(message);
    if (request?.op === 'gather') {
      const round = ++nextRound;
      const workers = live().filter((each) => each.isConnected());
      const state = {
        waiting: new Set(workers.map((each) => each.id)),
        reports: [] as WorkerReport[],
        finish() {
          clearTimeout(timer);
          rounds.delete(round);
          toWorker(worker, { [TAG]: 'hub', op: 'gathered', request: request.request, reports: state.reports, primary: primary() });
        },
      };
      const timer = setTimeout(() => state.finish(), GATHER_MS);
      rounds.set(round, state);
      for (const each of workers) toWorker(each, { [TAG]: 'hub', op: 'report', request: round });
      if (workers.length === 0) state.finish();
    } else if (request?.op === 'reported') {
      const state = rounds.get(request.request);
      if (state === undefined || !state.waiting.delete(worker.id)) return;
      state.reports.push(request.report);
      if (state.waiting.size === 0) state.finish();
    }
  };
  cluster.on('message', onMessage);
  return () => {
    cluster.off('message', onMessage);
    for (const state of rounds.values()) state.finish();
  };
}
