// The benchmark runner: `npm run bench [-- --quick] [-- --only=hub,raw] [-- --big]`.
// `--only=hub-server` runs only the hub-server section (bench/hub-server.mjs), which runs by default too.
// `--only=redis` runs only the redis section (bench/redis.mjs: hub instances sharing Redis), likewise.
//
// For every scenario and every variant it starts a fresh server process and a fresh client
// process (so no run inherits another's heap, JIT state or sockets), drives them over IPC,
// and at the end prints one markdown table and writes bench/results/latest.json.
// See bench/README.md for what each figure means.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child, killAll, runMain } from './lib/child.mjs';
import { renderTable } from './lib/table.mjs';
import { hubServerPlan, renderHubServerTable, runHubServerSection, SECTION as HUB_SERVER } from './hub-server.mjs';
import { renderRedisTable, runRedisSection, SECTION as REDIS } from './redis.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const VARIANTS = ['hub', 'raw', 'better-sse'];
const PATH = '/events?topic=bench'; // the hub subscribes by query; the others ignore it
const PAYLOAD = 64;

// ---------------------------------------------------------------------------------------------
// Configuration

function parseFlags(argv) {
  const flags = { quick: false, big: false, only: VARIANTS, hubServer: true, redis: true };
  for (const arg of argv) {
    if (arg === '--quick') flags.quick = true;
    else if (arg === '--big') flags.big = true;
    else if (arg.startsWith('--scenario=')) flags.scenario = arg.slice('--scenario='.length);
    else if (arg.startsWith('--only=')) {
      flags.only = arg.slice('--only='.length).split(',').filter(Boolean);
      const unknown = flags.only.filter((v) => !VARIANTS.includes(v) && v !== HUB_SERVER && v !== REDIS);
      if (unknown.length) throw new Error(`unknown variant(s): ${unknown.join(', ')} (have ${VARIANTS},${HUB_SERVER},${REDIS})`);
      flags.hubServer = flags.only.includes(HUB_SERVER);
      flags.redis = flags.only.includes(REDIS);
    } else throw new Error(`unknown flag ${arg} (have --quick, --big, --scenario=<part of a name>, --only=${VARIANTS})`);
  }
  // Keep the table's column order, whatever order --only gave.
  flags.only = VARIANTS.filter((v) => flags.only.includes(v));
  return flags;
}

function scenarios({ quick, big }) {
  if (quick) {
    return [
      { kind: 'fanout', name: 'fan-out 1k×200', clients: 1_000, events: 200 },
      { kind: 'fanout', name: 'paced 1k×100 @50/s', clients: 1_000, events: 100, rate: 50 },
      { kind: 'idle', name: 'idle 2k', clients: 2_000 },
      { kind: 'churn', name: 'churn 1k', cycles: 1_000 },
    ];
  }
  return [
    { kind: 'fanout', name: 'fan-out 1k×1000', clients: 1_000, events: 1_000 },
    { kind: 'fanout', name: 'fan-out 10k×100', clients: 10_000, events: 100 },
    // The two above publish as fast as the server's event loop turns, which rewards batching
    // consecutive events (and costs latency); at a fixed rate below everyone's capacity, the
    // cost per event and the latency of an unsaturated server show.
    { kind: 'fanout', name: 'paced 1k×250 @50/s', clients: 1_000, events: 250, rate: 50 },
    // Raw needs about 0.1 s of CPU per event at 10k clients: 5 events/s is what all keep up with.
    { kind: 'fanout', name: 'paced 10k×30 @5/s', clients: 10_000, events: 30, rate: 5 },
    { kind: 'idle', name: 'idle 10k', clients: 10_000 },
    ...(big ? [{ kind: 'idle', name: 'idle 50k', clients: 50_000 }] : []),
    { kind: 'churn', name: 'churn 5k', cycles: 5_000 },
  ];
}

// Every wait is bounded: a scenario that hangs reports what it got and the run moves on.
const TIMEOUT = {
  ready: 10_000, // a process to start
  connect: 90_000, // all clients of a scenario to connect
  subscribed: 15_000, // the server to count them all
  delivery: 90_000, // every event to reach every client
  churn: 90_000,
  drain: 15_000, // the server to notice churned clients are gone
};

// ---------------------------------------------------------------------------------------------
// File descriptors: each held connection is one fd in the server and one in the client.

function softFdLimit() {
  return Number(execFileSync('bash', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
}

/**
 * If the soft limit is too low, re-runs this script under `ulimit -n 65535` (children inherit
 * it). Returns false if it did (the caller must stop), true to carry on in this process.
 */
function ensureFdLimit(needed) {
  const limit = softFdLimit();
  if (limit >= needed || process.env.BENCH_FD_RAISED) return true;
  const probe = spawnSync('bash', ['-c', 'ulimit -n 65535'], { stdio: 'ignore' });
  if (probe.status !== 0) return true; // cannot raise it: run with what we have (see capClients)
  const child = spawnSync(
    'bash',
    ['-c', 'ulimit -n 65535 && exec "$0" "$@"', process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    { stdio: 'inherit', env: { ...process.env, BENCH_FD_RAISED: '1' } },
  );
  process.exitCode = child.status ?? 1;
  return false;
}

/** Connections one process can hold here: fds (with a margin) and loopback ephemeral ports. */
function maxClients() {
  const fds = softFdLimit() - 200;
  let ports = Infinity;
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    ports = high - low + 1 - 500;
  } catch {
    // not Linux: no known limit
  }
  return Math.min(fds, ports);
}

// ---------------------------------------------------------------------------------------------
// Processes

async function startServer(variant) {
  const server = new Child(join(here, 'servers', `${variant}.mjs`), `${variant} server`);
  const ready = await server.waitFor('ready', TIMEOUT.ready);
  if (!ready) throw new Error(`${variant} server did not start${server.stderrTail()}`);
  server.port = ready.port;
  return server;
}

async function startClient() {
  const client = new Child(join(here, 'client.mjs'), 'client');
  if (!(await client.waitFor('ready', TIMEOUT.ready))) throw new Error('client did not start');
  return client;
}

/** Polls the server until `predicate(count)` holds for its SSE stream count, or times out. */
async function waitForConnections(server, predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let count;
  do {
    ({ count } = await server.request('connections'));
    if (predicate(count)) return count;
    await sleep(100);
  } while (Date.now() < deadline);
  return count;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Scenarios. Each returns its figures; `notes` says what went wrong, if anything.

async function fanOut({ server, client }, { clients, events, rate }) {
  const notes = [];
  const conn = await client.request('connect', { port: server.port, path: PATH, count: clients }, TIMEOUT.connect + 5_000);
  if (conn.failed) notes.push(`${conn.failed} of ${clients} clients failed to connect`);
  const subscribed = await waitForConnections(server, (n) => n >= conn.connected, TIMEOUT.subscribed);
  if (subscribed < conn.connected) notes.push(`server counts ${subscribed} of ${conn.connected} connections`);

  const expected = conn.connected * events;
  await client.request('expect', { deliveries: expected });
  const complete = client.waitFor('complete', TIMEOUT.delivery);
  const intervalMs = rate ? 1000 / rate : 0; // 0: one event per event-loop turn
  const run = await server.request('run', { events, size: PAYLOAD, intervalMs }, TIMEOUT.delivery);
  if (!(await complete)) notes.push(`timed out after ${TIMEOUT.delivery / 1000} s waiting for every event`);
  const cpu = await server.request('cpu');
  const got = await client.request('report');
  const libraryStats = await server.request('stats');
  if (libraryStats?.evicted) notes.push(`the hub evicted ${libraryStats.evicted} slow clients`);

  if (got.closedEarly) notes.push(`${got.closedEarly} connections closed by the server`);
  const seconds = (got.lastRecvUs - run.firstUs) / 1e6;
  const ms = (us) => (us == null ? null : us / 1000);
  return {
    clients: conn.connected,
    events,
    deliveries: got.deliveries,
    expected: clients * events,
    deliveredPct: (100 * got.deliveries) / (clients * events),
    seconds,
    deliveriesPerSec: got.deliveries / seconds,
    serverCpuUs: cpu.totalUs,
    serverCpuUsPublishing: run.cpu.totalUs,
    cpuUsPerDelivery: cpu.totalUs / got.deliveries,
    clientCpuUs: got.cpuUs,
    latencyMs: { p50: ms(got.latencyUs.p50), p99: ms(got.latencyUs.p99), max: ms(got.latencyUs.max), samples: got.latencyUs.samples },
    connectSeconds: conn.ms / 1000,
    libraryStats,
    notes,
  };
}

async function idle({ server, client }, { clients }) {
  const notes = [];
  const before = await server.request('memory');
  const conn = await client.request('connect', { port: server.port, path: PATH, count: clients }, TIMEOUT.connect + 5_000);
  if (conn.failed) notes.push(`${conn.failed} of ${clients} clients failed to connect`);
  const held = await waitForConnections(server, (n) => n >= conn.connected, TIMEOUT.subscribed);
  if (held < conn.connected) notes.push(`server counts ${held} of ${conn.connected} connections`);
  const after = await server.request('memory');
  const perConnKiB = (bytes) => bytes / held / 1024;
  return {
    clients: held,
    rssKiBPerConn: perConnKiB(after.rss - before.rss),
    heapKiBPerConn: perConnKiB(after.heapUsed + after.external - (before.heapUsed + before.external)),
    before,
    after,
    connectsPerSec: conn.connected / (conn.ms / 1000),
    notes,
  };
}

async function churn({ server, client }, { cycles }) {
  const notes = [];
  const args = { port: server.port, path: PATH, concurrency: 50 };
  // A warm-up first, so that lazily built code and caches are not counted as growth.
  await client.request('churn', { ...args, count: Math.min(200, cycles), timeoutMs: TIMEOUT.churn }, TIMEOUT.churn + 5_000);
  await waitForConnections(server, (n) => n === 0, TIMEOUT.drain);
  const before = await server.request('memory');

  const result = await client.request('churn', { ...args, count: cycles, timeoutMs: TIMEOUT.churn }, TIMEOUT.churn + 5_000);
  if (result.failed) notes.push(`${result.failed} of ${cycles} cycles failed`);
  if (result.ok + result.failed < cycles) notes.push(`timed out after ${result.ok + result.failed} cycles`);
  const left = await waitForConnections(server, (n) => n === 0, TIMEOUT.drain);
  if (left) notes.push(`server still counts ${left} connections after every client left`);
  const after = await server.request('memory');
  return {
    cycles: result.ok,
    connectsPerSec: result.ok / (result.ms / 1000),
    heapGrowthMiB: (after.heapUsed - before.heapUsed) / 2 ** 20,
    rssGrowthMiB: (after.rss - before.rss) / 2 ** 20,
    before,
    after,
    notes,
  };
}

const SCENARIO = { fanout: fanOut, idle, churn };

/** One scenario for one variant, on fresh processes that are always stopped afterwards. */
async function runOne(scenario, variant) {
  const started = performance.now();
  let procs = {};
  try {
    procs = { server: await startServer(variant), client: await startClient() };
    return { ...(await SCENARIO[scenario.kind](procs, scenario)) };
  } catch (err) {
    return { error: String(err?.message ?? err), notes: [] };
  } finally {
    await Promise.all([procs.client?.stop(), procs.server?.stop()]);
    process.stderr.write(`  ${scenario.name} / ${variant}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const flags = parseFlags(process.argv.slice(2));
  const list = scenarios(flags).filter((s) => flags.scenario === undefined || s.name.includes(flags.scenario));
  const hubServerClients = flags.hubServer ? [hubServerPlan(flags).subscribers] : [];
  const needed = Math.max(...list.map((s) => s.clients ?? 0), ...hubServerClients) + 500;
  if (!ensureFdLimit(needed)) return;
  const cap = maxClients();
  for (const s of list) {
    if (s.clients > cap) {
      process.stderr.write(`${s.name}: capped at ${cap} connections (fd limit ${softFdLimit()} / ephemeral ports)\n`);
      s.name = `${s.name.split(' ')[0]} ${(cap / 1000).toFixed(1)}k (capped)`;
      s.clients = cap;
    }
  }

  const started = performance.now();
  const results = [];
  for (const scenario of list) {
    for (const variant of flags.only) {
      const r = await runOne(scenario, variant);
      results.push({ scenario: scenario.name, kind: scenario.kind, variant, ...r });
    }
  }
  const hubServer = flags.hubServer ? await runHubServerSection(flags, cap) : [];
  const redis = flags.redis ? await runRedisSection(flags) : undefined;
  const seconds = (performance.now() - started) / 1000;

  const table = renderTable(results, flags.only);
  const hubServerTable = renderHubServerTable(hubServer);
  const problems = results
    .filter((r) => r.error || r.notes?.length)
    .map((r) => `- ${r.scenario} / ${r.variant}: ${r.error ?? r.notes.join('; ')}`);
  for (const r of hubServer.filter((r) => r.error || r.notes?.length)) problems.push(`- ${r.scenario} / ${HUB_SERVER}: ${r.error ?? r.notes.join('; ')}`);
  for (const r of (redis?.results ?? []).filter((r) => r.error || r.notes?.length)) problems.push(`- ${r.scenario} / ${r.variant}: ${r.error ?? r.notes.join('; ')}`);
  if (flags.only.length) console.log(`\n${table}\n`);
  if (hubServer.length) console.log(`\n${hubServerTable}\n`);
  const redisTable = redis && renderRedisTable(redis);
  if (redis) console.log(`\n${redisTable}\n`);
  if (problems.length) console.log(`Problems:\n${problems.join('\n')}\n`);
  console.log(
    `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ` +
      `${PAYLOAD}-byte events, ${seconds.toFixed(0)} s.`,
  );

  const out = join(here, 'results');
  mkdirSync(out, { recursive: true });
  const json = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    flags,
    seconds,
    results,
    table,
    hubServer,
    hubServerTable,
    redis,
    redisTable,
  };
  writeFileSync(join(out, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
}

runMain(main);
