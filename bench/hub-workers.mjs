// `serve-sse hub --workers N` against `--workers 1` (node bench/hub-workers.mjs; npm run build
// first): the real bin, many idle subscribers, then a paced phase. Reports memory per connection
// (the RSS of the primary and every worker, after the connections minus before) and, paced,
// deliveries per second, publish-to-receive latency and the hub's CPU per delivery (every process
// of it). The load clients are several processes (a process may hold 20,000 open files here),
// each connecting from its own loopback address (127.0.0.2, .3, ...: one address has ~28,000
// ephemeral ports), with the load client of the other sections (bench/client.mjs).
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
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { Child } from './lib/child.mjs';
import { KEY, scrape, startHub, stopProcess } from './hub-server.mjs';
import { nowUs, payload } from './servers/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const flags = Object.fromEntries(
  process.argv.slice(2).map((arg) => {
    const [name, value = 'true'] = arg.replace(/^--/, '').split('=');
    return [name, value];
  }),
);
const quick = flags.quick === 'true';
const CONNECTIONS = Number(flags.connections ?? (quick ? 5_000 : 50_000));
const WORKERS = Number(flags.workers ?? 3);
const PER_CLIENT = Number(flags['per-client'] ?? (quick ? 1_000 : 12_500));
const RATE = Number(flags.rate ?? 2);
const SECONDS = Number(flags.seconds ?? (quick ? 4 : 10));
/** What one process can hold here (20,000 open files), with room for the rest of its files. */
const ONE_PROCESS_MAX = 18_000;
const TOPIC = 'bench';

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

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
function post(port, token, body) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/publish', method: 'POST', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

async function runRow({ workers, connections }, token) {
  const args = ['--history', '100', ...(workers > 1 ? ['--workers', String(workers)] : [])];
  const env = flags.sched === undefined ? {} : { NODE_CLUSTER_SCHED_POLICY: flags.sched };
  const hub = await startHub(30_000, { args, env });
  const clients = [];
  try {
    const pids = hubPids(hub.child.pid);
    await sleep(1000);
    const rssBefore = sum(pids.map(rssBytes));
    const count = Math.ceil(connections / PER_CLIENT);
    for (let index = 0; index < count; index++) clients.push(new Child(join(here, 'client.mjs'), `client ${index + 1}`));
    await Promise.all(clients.map((client) => client.waitFor('ready', 10_000)));
    const started = performance.now();
    const shares = clients.map((_, index) => Math.min(PER_CLIENT, connections - index * PER_CLIENT));
    const opened = await Promise.all(
      clients.map((client, index) =>
        client.request('connect', { port: hub.port, path: `/events?topic=${TOPIC}`, count: shares[index], timeoutMs: 120_000, localAddress: `127.0.0.${index + 2}` }, 130_000),
      ),
    );
    const connectSeconds = (performance.now() - started) / 1000;
    const connected = sum(opened.map((result) => result.connected));
    const deadline = Date.now() + 30_000;
    let counted = 0;
    // Every worker's connections; 0, not NaN, without the metric, so that the wait goes on.
    while ((counted = (await scrape(hub.port)).connections || 0) < connected && Date.now() < deadline) await sleep(200);
    await sleep(2000);
    const perProcess = pids.map(rssBytes);
    const rssAfter = sum(perProcess);

    // Paced: RATE events/s for SECONDS; every subscriber is owed every event.
    const events = RATE * SECONDS;
    await Promise.all(clients.map((client, index) => client.request('expect', { deliveries: opened[index].connected * events })));
    const complete = Promise.all(clients.map((client) => client.waitFor('complete', SECONDS * 1000 + 30_000)));
    const cpuBefore = sum(pids.map(cpuUs));
    const firstUs = nowUs();
    let failedPublishes = 0;
    for (let n = 0; n < events; n++) {
      const due = firstUs + (n * 1e6) / RATE;
      const wait = (due - nowUs()) / 1000;
      if (wait > 0) await sleep(wait);
      const status = await post(hub.port, token, JSON.stringify({ topic: TOPIC, data: payload(nowUs(), 64) }));
      if (status !== 200) failedPublishes++;
    }
    const allComplete = (await complete).every(Boolean);
    const cpuAfter = sum(pids.map(cpuUs));
    const reports = await Promise.all(clients.map((client) => client.request('report', {})));
    const deliveries = sum(reports.map((report) => report.deliveries));
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
      expected: connected * events,
      complete: allComplete,
      deliveriesPerSecond: deliveries / seconds,
      // Per load client; the worst of them.
      p50Ms: Math.max(...reports.map((report) => report.latencyUs.p50 ?? 0)) / 1000,
      p99Ms: Math.max(...reports.map((report) => report.latencyUs.p99 ?? 0)) / 1000,
      hubCpuUsPerDelivery: (cpuAfter - cpuBefore) / deliveries,
      closedEarly: sum(reports.map((report) => report.closedEarly)),
    };
  } finally {
    await Promise.all(clients.map((client) => client.stop()));
    await stopProcess(hub.child);
    // Killed with SIGKILL, the primary leaves its workers to notice (they drain and exit).
    await sleep(1000);
  }
}

const token = await new SignJWT({ sse: { publish: [TOPIC] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(KEY));
const small = Math.min(CONNECTIONS, ONE_PROCESS_MAX);
const rows =
  flags.rows === undefined
    ? [
        { workers: 1, connections: small },
        { workers: WORKERS, connections: small },
        ...(CONNECTIONS > small ? [{ workers: WORKERS, connections: CONNECTIONS }] : []),
      ]
    : flags.rows.split(',').map((row) => {
        const [workers, connections] = row.split(':').map(Number);
        return { workers, connections };
      });
const results = [];
for (const row of rows) {
  process.stderr.write(`--workers ${row.workers}, ${row.connections} connections...\n`);
  try {
    results.push(await runRow(row, token));
  } catch (error) {
    results.push({ ...row, error: String(error?.message ?? error) });
  }
  process.stderr.write(`${JSON.stringify(results.at(-1))}\n`);
}
agent.destroy();

const number = (value, digits = 0) => (value === undefined || Number.isNaN(value) ? '-' : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
console.log(`\nserve-sse hub --workers, paced ${RATE}/s for ${SECONDS} s${flags.sched === undefined ? '' : `, NODE_CLUSTER_SCHED_POLICY=${flags.sched}`}, ${new Date().toISOString()}, Node ${process.version}\n`);
console.log('| workers | connections | connect s | RSS before → after MiB | bytes/connection | deliveries/s | of expected | p50 / p99 ms | hub CPU µs/delivery |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const row of results) {
  if (row.error !== undefined) {
    console.log(`| ${row.workers} | ${row.connections} | error: ${row.error} | | | | | | |`);
    continue;
  }
  console.log(
    `| ${row.workers} | ${number(row.connections)} | ${number(row.connectSeconds, 1)} | ${number(row.rssBeforeMiB)} → ${number(row.rssAfterMiB)} (${row.rssPerProcessMiB.join(' + ')}) | ${number(row.bytesPerConnection)} | ${number(row.deliveriesPerSecond)} | ${((100 * row.deliveries) / row.expected).toFixed(2)} % | ${number(row.p50Ms, 1)} / ${number(row.p99Ms, 1)} | ${number(row.hubCpuUsPerDelivery, 2)} |`,
  );
}
if (flags.json !== undefined) writeFileSync(flags.json, `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
