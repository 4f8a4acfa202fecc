// The hub-server section of the benchmark (`node bench/run.mjs --only=hub-server`): the real
// `serve-sse hub` bin from dist/, publishers POSTing JSON with a JWT over HTTP from one process,
// subscribers (raw sockets, the same load client as the other sections) in another. Reports
// publish requests/s, deliveries/s and publish-to-receive latency. Every wait is bounded, and the
// whole section stays under a minute.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { Child } from './lib/child.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', 'dist', 'esm', 'cli', 'main.js');
export const KEY = 'bench-publisher-key-0123456789abcdef';
const TOPIC = 'bench';
const PAYLOAD = 64;

export const SECTION = 'hub-server';

/** The whole section, every scenario included, ends within this. */
const SECTION_BUDGET = 55_000;
const TIMEOUT = {
  ready: 10_000,
  connect: 20_000,
  subscribed: 10_000,
  publish: 20_000,
  delivery: 20_000,
};

/**
 * One hub process for the whole section, in phases: publishing with nobody subscribed, then the
 * subscribers connect, then a paced phase (a rate the hub keeps up with: latency of an
 * unsaturated server) and a flat-out one (throughput; events published within a tick share writes).
 */
export function hubServerPlan({ quick }) {
  const subscribers = quick ? 2_000 : 10_000;
  const k = `${subscribers / 1000}k`;
  const rate = quick ? 20 : 5;
  return {
    subscribers,
    phases: [
      { name: `publish only ×${quick ? 2_000 : 10_000}`, events: quick ? 2_000 : 10_000, concurrency: 16, subscribed: false },
      // 5 events/s to 10,000 subscribers: 50,000 unbatched deliveries/s, under half a core for the
      // hub and for the load client (which reads every socket), so that latency is not queueing.
      { name: `${k} subscribers, paced ${rate}/s ×${rate * 4}`, events: rate * 4, concurrency: 4, rate, subscribed: true },
      { name: `${k} subscribers, flat out ×${quick ? 100 : 200}`, events: quick ? 100 : 200, concurrency: 16, subscribed: true },
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// The hub process: spawned like a deployment would run it, found by the pino line it logs.

const spawned = new Set();
process.on('exit', () => {
  for (const child of spawned) child.kill('SIGKILL');
});

/** Also for the reconnect storm (bench/reconnect.mjs), with more flags or environment. */
export function startHub(readyMs, { args = [], env = {} } = {}) {
  const child = spawn(
    process.execPath,
    [BIN, 'hub', '--host', '127.0.0.1', '--port', '0', '--max-connections-per-ip', '0', ...args],
    // Logs at info, as deployed: a line per connection opened and closed.
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SERVE_SSE_PUBLISHER_KEY: KEY, LOG_LEVEL: 'info', ...env } },
  );
  spawned.add(child);
  child.on('exit', () => spawned.delete(child));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text) => (stderr = (stderr + text).slice(-2000)));
  return new Promise((resolve, reject) => {
    let head = '';
    const timer = setTimeout(() => fail(new Error(`the hub did not start within ${readyMs} ms: ${stderr}`)), readyMs);
    const fail = (error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    child.on('exit', (code) => fail(new Error(`the hub exited (${code}): ${stderr}`)));
    child.stdout.setEncoding('utf8');
    const onData = (text) => {
      head += text;
      const line = head.split('\n').find((entry) => entry.includes('"serve-sse hub listening"'));
      if (line === undefined) return;
      clearTimeout(timer);
      // From here stdout is only drained: a full pipe would block the hub's logger.
      child.stdout.off('data', onData);
      child.stdout.resume();
      resolve({ child, port: JSON.parse(line).port });
    };
    child.stdout.on('data', onData);
  });
}

export async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await gone;
}

/** The hub process's CPU time in µs (Linux: /proc/<pid>/stat), or undefined elsewhere. */
export function processCpuUs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after "pid (comm) ".
    return ((Number(fields[11]) + Number(fields[12])) / 100) * 1e6;
  } catch {
    return undefined;
  }
}

/** The hub's `/metrics` text. */
function metricsText(port) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
}

/**
 * A metric in a `/metrics` text: its sample (`name value`), or its labelled samples
 * (`name{worker="1"} value`, one per worker with --workers) summed; NaN if it has none.
 */
export function metricTotal(text, name) {
  const values = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((match) => Number(match[1]));
  return values.length === 0 ? NaN : values.reduce((total, value) => total + value, 0);
}

/** The hub's figures from `/metrics`: with --workers, every worker's together. */
export async function scrape(port) {
  const text = await metricsText(port);
  const value = (name) => metricTotal(text, name);
  return { connections: value('serve_sse_connections'), published: value('serve_sse_published_total'), evicted: value('serve_sse_evicted_total'), dropped: value('serve_sse_dropped_total'), replayed: value('serve_sse_replayed_total'), history: value('serve_sse_history_events') };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------

/** The section: every phase on one set of fresh processes, always stopped at the end. */
export async function runHubServerSection(flags, cap) {
  const plan = hubServerPlan(flags);
  // --scenario=<part of a name> picks phases, as it picks scenarios in the other sections.
  const phases = plan.phases.filter((phase) => flags.scenario === undefined || phase.name.includes(flags.scenario));
  const subscribers = Math.min(plan.subscribers, cap);
  if (subscribers < plan.subscribers) process.stderr.write(`${SECTION}: capped at ${cap} subscribers\n`);
  const deadline = Date.now() + SECTION_BUDGET;
  // Each wait gets its own limit, cut short by what is left of the section's budget.
  const within = (ms) => Math.max(1, Math.min(ms, deadline - Date.now()));
  const token = await new SignJWT({ sse: { publish: [TOPIC] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(KEY));
  const results = [];
  const procs = {};
  try {
    procs.hub = await startHub(within(TIMEOUT.ready));
    procs.publisher = new Child(join(here, 'hub-publisher.mjs'), 'publisher');
    if (!(await procs.publisher.waitFor('ready', within(TIMEOUT.ready)))) throw new Error('the publisher did not start');
    const context = { ...procs.hub, publisher: procs.publisher, token, within, connected: 0 };
    for (const phase of phases) {
      const started = performance.now();
      const name = phase.subscribed && subscribers < plan.subscribers ? `${phase.name} (capped at ${subscribers})` : phase.name;
      if (Date.now() >= deadline) {
        results.push({ scenario: name, error: `skipped: the section's ${SECTION_BUDGET / 1000} s budget is spent`, notes: [] });
        continue;
      }
      const notes = [];
      try {
        if (phase.subscribed && context.subscribers === undefined) {
          procs.client = new Child(join(here, 'client.mjs'), 'client');
          context.subscribers = await connectSubscribers(context, procs.client, subscribers, notes);
        }
        results.push({ scenario: name, ...(await runPhase(context, phase, notes)), notes });
      } catch (err) {
        results.push({ scenario: name, error: String(err?.message ?? err), notes });
      }
      process.stderr.write(`  ${name} / ${SECTION}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    }
  } catch (err) {
    results.push({ scenario: SECTION, error: String(err?.message ?? err), notes: [] });
  } finally {
    await Promise.all([procs.client?.stop(), procs.publisher?.stop(), procs.hub && stopProcess(procs.hub.child)]);
  }
  return results;
}

/** Connects `count` subscribers from the load client; waits for the hub to count them. */
async function connectSubscribers({ port, within }, client, count, notes) {
  if (!(await client.waitFor('ready', within(TIMEOUT.ready)))) throw new Error('the load client did not start');
  const connectMs = within(TIMEOUT.connect);
  const started = performance.now();
  const conn = await client.request('connect', { port, path: `/events?topic=${TOPIC}`, count, timeoutMs: connectMs }, connectMs + 5_000);
  if (conn.failed) notes.push(`${conn.failed} of ${count} subscribers failed to connect`);
  const countedBy = Date.now() + within(TIMEOUT.subscribed);
  let counted = 0;
  while ((counted = (await scrape(port)).connections) < conn.connected && Date.now() < countedBy) await sleep(100);
  if (counted < conn.connected) notes.push(`the hub counts ${counted} of ${conn.connected} subscribers`);
  return { client, connected: conn.connected, connectSeconds: (performance.now() - started) / 1000 };
}

/** One phase: publish its events over HTTP and, with subscribers, wait for every delivery. */
async function runPhase({ port, child, publisher, subscribers, token, within }, { events, concurrency, rate, subscribed }, notes) {
  const client = subscribers?.client;
  const connected = subscribed ? subscribers.connected : 0;
  if (subscribed) await client.request('expect', { deliveries: connected * events });
  const complete = subscribed ? client.waitFor('complete', within(TIMEOUT.publish + TIMEOUT.delivery)) : Promise.resolve(true);
  const publishMs = within(TIMEOUT.publish);
  const before = await scrape(port);
  const cpuBefore = processCpuUs(child.pid);
  const run = await publisher.request(
    'publish',
    { port, token, topic: TOPIC, events, concurrency, rate, size: PAYLOAD, timeoutMs: publishMs },
    publishMs + 5_000,
  );
  if (run.failed) notes.push(`${run.failed} publishes failed (${JSON.stringify(run.statuses)})`);
  if (run.ok + run.failed < events) notes.push(`timed out after ${run.ok + run.failed} of ${events} publishes`);
  if (!(await complete)) notes.push('timed out waiting for every delivery');
  const cpuUs = cpuBefore === undefined ? undefined : processCpuUs(child.pid) - cpuBefore;
  const after = await scrape(port);
  if (after.evicted > before.evicted) notes.push(`the hub evicted ${after.evicted - before.evicted} slow subscribers`);

  const result = {
    subscribers: connected,
    events,
    concurrency,
    rate,
    published: run.ok,
    publishPerSec: run.ok / ((run.lastUs - run.firstUs) / 1e6),
    publishRequestMs: { p50: run.requestUs.p50 / 1000, p99: run.requestUs.p99 / 1000 },
    serverCpuUs: cpuUs,
    stats: after,
  };
  if (!subscribed) {
    if (cpuUs !== undefined) result.cpuUsPerPublish = cpuUs / run.ok;
    return result;
  }
  const got = await client.request('report');
  Object.assign(result, {
    deliveries: got.deliveries,
    deliveredPct: (100 * got.deliveries) / (connected * events),
    deliveriesPerSec: got.deliveries / ((got.lastRecvUs - run.firstUs) / 1e6),
    latencyMs: { p50: got.latencyUs.p50 / 1000, p99: got.latencyUs.p99 / 1000, samples: got.latencyUs.samples },
    clientCpuUs: got.cpuUs,
    connectSeconds: subscribers.connectSeconds,
  });
  if (cpuUs !== undefined) result.cpuUsPerDelivery = cpuUs / got.deliveries;
  return result;
}

const int = (v) => Math.round(v).toLocaleString('en-US');
const fixed = (digits) => (v) => v.toFixed(digits);
const METRICS = [
  { name: 'publish requests/s ↑', get: (r) => r.publishPerSec, format: int },
  { name: 'publish request p50 ms ↓', get: (r) => r.publishRequestMs?.p50, format: fixed(2) },
  { name: 'publish request p99 ms ↓', get: (r) => r.publishRequestMs?.p99, format: fixed(2) },
  { name: 'server CPU µs/publish ↓', get: (r) => r.cpuUsPerPublish, format: fixed(1) },
  { name: 'deliveries/s ↑', get: (r) => r.deliveriesPerSec, format: int },
  { name: 'publish-to-receive p50 ms ↓', get: (r) => r.latencyMs?.p50, format: fixed(1) },
  { name: 'publish-to-receive p99 ms ↓', get: (r) => r.latencyMs?.p99, format: fixed(1) },
  { name: 'server CPU µs/delivery ↓', get: (r) => r.cpuUsPerDelivery, format: fixed(3) },
  { name: 'delivered % ↑', get: (r) => r.deliveredPct, format: fixed(1) },
];

export function renderHubServerTable(results) {
  const lines = ['| hub server | metric | value |', '| --- | --- | --- |'];
  for (const r of results) {
    if (r.error) {
      lines.push(`| ${r.scenario} | error | ${r.error} |`);
      continue;
    }
    for (const metric of METRICS) {
      const value = metric.get(r);
      if (Number.isFinite(value)) lines.push(`| ${r.scenario} | ${metric.name} | ${metric.format(value)} |`);
    }
  }
  return lines.join('\n');
}
