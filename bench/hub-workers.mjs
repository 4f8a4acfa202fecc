// `serve-sse hub --workers N` against `--workers 1`: the real bin, many idle subscribers, then a
// paced phase. A section of the benchmark (`node bench/run.mjs --only=hub-workers`; it runs by
// default, `--quick` in its quick form), and a script of its own (node bench/hub-workers.mjs;
// npm run build first). Reports memory per connection (the RSS of the primary and every worker,
// after the connections minus before) and, paced, deliveries per second, publish-to-receive
// latency and the hub's CPU per delivery (every process of it). The load clients are several
// processes (a process may hold 20,000 open files here), each connecting from its own loopback
// address (127.0.0.2, .3, ...: one address has ~28,000 ephemeral ports), with the load client of
// the other sections (bench/client.mjs).
//
//   --connections=N   subscribers of the largest row (default 50,000)
//   --workers=N       workers of the multi-worker rows (default 3)
//   --per-client=N    subscribers per load-client process (default 12,500)
//   --rate=N --seconds=N   the paced phase: N events/s for N s (default 2/s for 10 s)
//   --rows=W:C,...    the rows, as workers:connections (default 1:18000,W:18000,W:N)
//   --sched=none      NODE_CLUSTER_SCHED_POLICY for the hub: the kernel spreads the connections
//                     (workers accept them) instead of the primary handing them out in turn
//   --quick           5,000 connections, 1,000 per client, 4 s paced
//   --json=FILE       also write the rows as JSON
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SignJWT } from 'jose';
import { Child } from './lib/child.mjs';
import { KEY, scrape, startHub, stopProcess } from './hub-server.mjs';
import { nowUs, payload } from './servers/harness.mjs';

export const SECTION = 'hub-workers';

const here = dirname(fileURLToPath(import.meta.url));
/** What one process can hold here (20,000 open files), with room for the rest of its files. */
const ONE_PROCESS_MAX = 18_000;
const TOPIC = 'bench';
/** After the primary is killed, its workers drain and exit on their own; at most this long. */
const WORKERS_GONE_MS = 20_000;

/**
 * The section's figures and rows, from the flags (`quick` true or 'true': run.mjs or the command
 * line). `cap`: the connections one hub process may hold (its open files); a row gets at most
 * that many per worker.
 */
export function hubWorkersPlan(flags, cap = Infinity) {
  const quick = flags.quick === true || flags.quick === 'true';
  const connections = Number(flags.connections ?? (quick ? 5_000 : 50_000));
  const workers = Number(flags.workers ?? 3);
  const plan = {
    connections,
    workers,
    perClient: Number(flags['per-client'] ?? (quick ? 1_000 : 12_500)),
    rate: Number(flags.rate ?? 2),
    seconds: Number(flags.seconds ?? (quick ? 4 : 10)),
    sched: flags.sched,
  };
  const small = Math.min(connections, ONE_PROCESS_MAX);
  const rows =
    flags.rows === undefined
      ? [
          { workers: 1, connections: small },
          { workers, connections: small },
          ...(connections > small ? [{ workers, connections }] : []),
        ]
      : flags.rows.split(',').map((row) => {
          const [w, c] = row.split(':').map(Number);
          return { workers: w, connections: c };
        });
  plan.rows = rows.map((row) => {
    const allowed = row.workers * cap;
    const capped = row.connections > allowed ? { connections: allowed, cappedFrom: row.connections } : {};
    const named = { ...row, ...capped };
    return { ...named, scenario: `--workers ${named.workers}, ${named.connections} connections${capped.cappedFrom ? ` (capped from ${capped.cappedFrom})` : ''}` };
  });
  return plan;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The processes of a hub: the one started and, with --workers, its children. */
function hubPids(pid) {
  let children = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {}
  return [pid, ...children];
}

function rssBytes(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? 0 : Number(match[1]) * 1024;
}

function cpuUs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / 100) * 1e6;
}

const sum = (values) => values.reduce((total, value) => total + value, 0);

function post(agent, port, token, body) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/publish', method: 'POST', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

/** Waits for the workers of a killed primary to exit; kills those still there after WORKERS_GONE_MS. */
async function workersGone(pids, notes) {
  const alive = () => pids.filter((pid) => existsSync(`/proc/${pid}`));
  const deadline = Date.now() + WORKERS_GONE_MS;
  while (alive().length > 0 && Date.now() < deadline) await sleep(200);
  const left = alive();
  if (left.length === 0) return;
  notes.push(`${left.length} workers still ran ${WORKERS_GONE_MS / 1000} s after the primary was killed (killed)`);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

async function runRow({ workers, connections }, plan, { token, agent }) {
  const notes = [];
  const args = ['--history', '100', ...(workers > 1 ? ['--workers', String(workers)] : [])];
  const env = plan.sched === undefined ? {} : { NODE_CLUSTER_SCHED_POLICY: plan.sched };
  const hub = await startHub(30_000, { args, env });
  const clients = [];
  let pids = [hub.child.pid];
  try {
    pids = hubPids(hub.child.pid);
    await sleep(1000);
    const rssBefore = sum(pids.map(rssBytes));
    const count = Math.ceil(connections / plan.perClient);
    for (let index = 0; index < count; index++) clients.push(new Child(join(here, 'client.mjs'), `client ${index + 1}`));
    const ready = await Promise.all(clients.map((client) => client.waitFor('ready', 10_000)));
    if (!ready.every(Boolean)) throw new Error(`${ready.filter((r) => !r).length} of ${count} load clients did not start`);
    const started = performance.now();
    const shares = clients.map((_, index) => Math.min(plan.perClient, connections - index * plan.perClient));
    const opened = await Promise.all(
      clients.map((client, index) =>
        client.request('connect', { port: hub.port, path: `/events?topic=${TOPIC}`, count: shares[index], timeoutMs: 120_000, localAddress: `127.0.0.${index + 2}` }, 130_000),
      ),
    );
    const connectSeconds = (performance.now() - started) / 1000;
    const connected = sum(opened.map((result) => result.connected));
    if (connected < connections) notes.push(`${connections - connected} of ${connections} subscribers failed to connect`);
    const deadline = Date.now() + 30_000;
    let counted = 0;
    // Every worker's connections; 0, not NaN, without the metric, so that the wait goes on.
    while ((counted = (await scrape(hub.port)).connections || 0) < connected && Date.now() < deadline) await sleep(200);
    if (counted < connected) notes.push(`the hub counts ${counted} of ${connected} subscribers`);
    await sleep(2000);
    const perProcess = pids.map(rssBytes);
    const rssAfter = sum(perProcess);

    // Paced: rate events/s for seconds; every subscriber is owed every event.
    const events = plan.rate * plan.seconds;
    await Promise.all(clients.map((client, index) => client.request('expect', { deliveries: opened[index].connected * events })));
    const complete = Promise.all(clients.map((client) => client.waitFor('complete', plan.seconds * 1000 + 30_000)));
    const cpuBefore = sum(pids.map(cpuUs));
    const firstUs = nowUs();
    let failedPublishes = 0;
    for (let n = 0; n < events; n++) {
      const due = firstUs + (n * 1e6) / plan.rate;
      const wait = (due - nowUs()) / 1000;
      if (wait > 0) await sleep(wait);
      const status = await post(agent, hub.port, token, JSON.stringify({ topic: TOPIC, data: payload(nowUs(), 64) }));
      if (status !== 200) failedPublishes++;
    }
    if (failedPublishes) notes.push(`${failedPublishes} of ${events} publishes failed`);
    const allComplete = (await complete).every(Boolean);
    const cpuAfter = sum(pids.map(cpuUs));
    const reports = await Promise.all(clients.map((client) => client.request('report', {})));
    const deliveries = sum(reports.map((report) => report.deliveries));
    const expected = connected * events;
    if (!allComplete || deliveries < expected) notes.push(`${deliveries} of ${expected} deliveries (${((100 * deliveries) / expected).toFixed(2)} %)`);
    const closedEarly = sum(reports.map((report) => report.closedEarly));
    if (closedEarly) notes.push(`${closedEarly} connections closed by the hub`);
    const lastUs = Math.max(...reports.map((report) => report.lastRecvUs));
    const seconds = (lastUs - firstUs) / 1e6;
    return {
      workers,
      connections: connected,
      failedConnections: connections - connected,
      counted,
      connectSeconds,
      rssBeforeMiB: rssBefore / 2 ** 20,
      rssAfterMiB: rssAfter / 2 ** 20,
      rssPerProcessMiB: perProcess.map((bytes) => Math.round(bytes / 2 ** 20)),
      bytesPerConnection: (rssAfter - rssBefore) / connected,
      events,
      failedPublishes,
      deliveries,
      expected,
      complete: allComplete,
      deliveriesPerSecond: deliveries / seconds,
      // Per load client; the worst of them.
      p50Ms: Math.max(...reports.map((report) => report.latencyUs.p50 ?? 0)) / 1000,
      p99Ms: Math.max(...reports.map((report) => report.latencyUs.p99 ?? 0)) / 1000,
      hubCpuUsPerDelivery: (cpuAfter - cpuBefore) / deliveries,
      closedEarly,
      notes,
    };
  } finally {
    await Promise.all(clients.map((client) => client.stop()));
    await stopProcess(hub.child);
    // Killed with SIGKILL, the primary leaves its workers to notice (they drain and exit): the
    // next row starts once they are gone.
    await workersGone(pids.slice(1), notes);
  }
}

/**
 * The section: every row on fresh processes (a hub and its load clients), always stopped at the
 * end. `cap`: the connections one hub process may hold. Returns the rows, each with its
 * `scenario` name, `notes` (what went wrong) or `error`.
 */
export async function runHubWorkersSection(flags, cap = Infinity) {
  const plan = hubWorkersPlan(flags, cap);
  // --scenario=<part of a name> picks rows, as it picks scenarios in the other sections.
  const rows = plan.rows.filter((row) => flags.scenario === undefined || row.scenario.includes(flags.scenario));
  for (const row of rows) if (row.cappedFrom) process.stderr.write(`${SECTION}: ${row.workers} workers capped at ${row.connections} connections (${cap} per process)\n`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const results = [];
  try {
    const token = await new SignJWT({ sse: { publish: [TOPIC] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(KEY));
    const paced = { rate: plan.rate, seconds: plan.seconds, ...(plan.sched === undefined ? {} : { sched: plan.sched }) };
    for (const row of rows) {
      const started = performance.now();
      process.stderr.write(`--workers ${row.workers}, ${row.connections} connections...\n`);
      const named = { scenario: row.scenario, ...(row.cappedFrom ? { cappedFrom: row.cappedFrom } : {}) };
      try {
        results.push({ ...named, ...(await runRow(row, plan, { token, agent })), ...paced });
      } catch (error) {
        results.push({ ...named, workers: row.workers, connections: row.connections, ...paced, error: String(error?.message ?? error), notes: [] });
      }
      const result = results.at(-1);
      result.wallSeconds = (performance.now() - started) / 1000;
      process.stderr.write(`${JSON.stringify(result)}\n`);
      process.stderr.write(`  ${row.scenario} / ${SECTION}: ${result.wallSeconds.toFixed(1)} s\n`);
    }
  } finally {
    agent.destroy();
  }
  return results;
}

const number = (value, digits = 0) => (value === undefined || Number.isNaN(value) ? '-' : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

/** What the rows were run with: the paced phase, and the scheduling policy if one was set. */
export function hubWorkersCaption(rows) {
  const first = rows[0] ?? {};
  return `serve-sse hub --workers, paced ${first.rate}/s for ${first.seconds} s${first.sched === undefined ? '' : `, NODE_CLUSTER_SCHED_POLICY=${first.sched}`}`;
}

/** The rows as one markdown table. */
export function renderHubWorkersTable(rows) {
  const lines = [
    '| workers | connections | connect s | RSS before → after MiB | bytes/connection | deliveries/s | of expected | p50 / p99 ms | hub CPU µs/delivery |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const row of rows) {
    if (row.error !== undefined) {
      lines.push(`| ${row.workers} | ${row.connections} | error: ${row.error} | | | | | | |`);
      continue;
    }
    lines.push(
      `| ${row.workers} | ${number(row.connections)} | ${number(row.connectSeconds, 1)} | ${number(row.rssBeforeMiB)} → ${number(row.rssAfterMiB)} (${row.rssPerProcessMiB.join(' + ')}) | ${number(row.bytesPerConnection)} | ${number(row.deliveriesPerSecond)} | ${((100 * row.deliveries) / row.expected).toFixed(2)} % | ${number(row.p50Ms, 1)} / ${number(row.p99Ms, 1)} | ${number(row.hubCpuUsPerDelivery, 2)} |`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// On its own: node bench/hub-workers.mjs [--flags].

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const flags = Object.fromEntries(
    process.argv.slice(2).map((arg) => {
      const [name, value = 'true'] = arg.replace(/^--/, '').split('=');
      return [name, value];
    }),
  );
  const results = await runHubWorkersSection(flags);
  console.log(`\n${hubWorkersCaption(results)}, ${new Date().toISOString()}, Node ${process.version}\n`);
  console.log(renderHubWorkersTable(results));
  if (flags.json !== undefined) writeFileSync(flags.json, `${JSON.stringify(results, null, 2)}\n`);
  process.exit(0);
}
