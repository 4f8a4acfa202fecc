// The benchmark runner: `npm run bench [-- --quick] [-- --only=hub,raw] [-- --big]`.
// `--only=hub-server` runs only the hub-server section (bench/hub-server.mjs), which runs by default too.
// `--only=redis` runs only the redis section (bench/redis.mjs: hub instances sharing Redis), likewise.
// `--only=mercure` runs only the Mercure section (bench/mercure.mjs: the Mercure endpoint against the native hub), likewise.
// `--only=hub-workers` runs only the hub-workers section (bench/hub-workers.mjs: `serve-sse hub --workers N`
// against --workers 1, up to 50,000 connections; minutes), likewise.
//
// For every scenario and every variant it starts a fresh server process and a fresh client
// process (so no run inherits another's heap, JIT state or sockets), drives them over IPC,
// and at the end prints one markdown table and writes bench/results/latest.json. The paced
// fan-outs instead start every variant's pair at once and alternate the variants over rounds
// (`pacedFanOut`), so that the machine's speed drifting does not land on one variant's turn.
// See bench/README.md for what each figure means.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child, killAll, runMain } from './lib/child.mjs';
import { medians } from './lib/stats.mjs';
import { renderTable } from './lib/table.mjs';
import { hubServerPlan, renderHubServerTable, runHubServerSection, SECTION as HUB_SERVER } from './hub-server.mjs';
import { renderRedisTable, runRedisSection, SECTION as REDIS } from './redis.mjs';
import { hubWorkersCaption, hubWorkersPlan, renderHubWorkersTable, runHubWorkersSection, SECTION as HUB_WORKERS } from './hub-workers.mjs';
import { mercureConnections, renderMercureTable, runMercureSection, SECTION as MERCURE } from './mercure.mjs';
import { clientSize, CLIENT_SIZE_BUDGET } from './client-size.mjs';
import { reconnectStorms, renderReconnectTable, runReconnectStorm } from './reconnect.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const VARIANTS = ['hub', 'raw', 'raw-socket', 'better-sse'];
// raw-socket (servers/raw-socket.mjs: pre-framed chunks straight to `res.socket`) is the floor of
// the fan-out and paced rows. Idle and churn it would only repeat raw (the same node:http objects
// per connection), and it keeps no history to replay.
const FANOUT_ONLY = new Set(['raw-socket']);
// The main table's ratio columns: each against raw (res.write) as before, better-sse against the
// hub, and the hub against the bare socket write.
const RATIOS = [
  ['hub', 'raw'],
  ['better-sse', 'raw'],
  ['hub', 'better-sse'],
  ['raw-socket', 'raw'],
  ['hub', 'raw-socket'],
];
const PATH = '/events?topic=bench'; // the hub subscribes by query; the others ignore it
const PAYLOAD = 64;

// ---------------------------------------------------------------------------------------------
// Configuration

function parseFlags(argv) {
  const flags = { quick: false, big: false, only: VARIANTS, hubServer: true, hubWorkers: true, redis: true, mercure: true };
  for (const arg of argv) {
    if (arg === '--quick') flags.quick = true;
    else if (arg === '--big') flags.big = true;
    else if (arg.startsWith('--scenario=')) flags.scenario = arg.slice('--scenario='.length);
    else if (arg.startsWith('--only=')) {
      flags.only = arg.slice('--only='.length).split(',').filter(Boolean);
      const unknown = flags.only.filter((v) => !VARIANTS.includes(v) && v !== HUB_SERVER && v !== HUB_WORKERS && v !== REDIS && v !== MERCURE);
      if (unknown.length) throw new Error(`unknown variant(s): ${unknown.join(', ')} (have ${VARIANTS},${HUB_SERVER},${HUB_WORKERS},${REDIS},${MERCURE})`);
      flags.hubServer = flags.only.includes(HUB_SERVER);
      flags.hubWorkers = flags.only.includes(HUB_WORKERS);
      flags.redis = flags.only.includes(REDIS);
      flags.mercure = flags.only.includes(MERCURE);
    } else throw new Error(`unknown flag ${arg} (have --quick, --big, --scenario=<part of a name>, --only=${[...VARIANTS, HUB_SERVER, HUB_WORKERS, REDIS, MERCURE]})`);
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
      ...replayStorms({ clients: 1_000, stalled: 10 }),
      ...reconnectStorms({ quick }),
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
    ...replayStorms({ clients: 10_000, stalled: 100, big: 1_000 }),
    ...reconnectStorms({ quick }),
  ];
}

// The replay storm (issue 10): the moment after a restart or a network blip, when every client
// comes back at once with a `Last-Event-ID` and is owed what it missed. Hub-only in spirit:
// better-sse keeps no history and cannot replay by id; `raw` gets the least a hand-written
// replay can be (servers/raw-replay.mjs: a ring of framed Buffers, written as they are), as the
// baseline the hub's figures are compared with, as in the fan-outs.
const REPLAY_VARIANTS = ['hub', 'raw'];
const SERVER_FILE = { 'replay/raw': 'raw-replay' };
const HISTORY = 1_000; // the hub's default history: what it replays from unless told otherwise
const OWED = 100;
const HIGH_WATER_MARK = 65_536; // the hub's default, which the bench keeps
// The non-readers' events must be large enough that a replay of 100 overflows the kernel: on
// Linux loopback a socket whose peer never reads takes about 4 MiB (the sender's buffer grows to
// tcp_wmem's 4 MiB maximum, plus the receiver's window) before anything stays in the server. 16
// KiB events (1.6 MiB) vanish into it whole; 64 KiB events (6.4 MiB) leave 2.4 MiB per client to
// the server: what it does with them is the question.
const STALL_EVENT = 65_536;
const EVENT = 1_024;
const BIG_EVENT = 16_384;
// Readers waiting for their response head, at most: with the non-readers, under the listen backlog
// (511), so no SYN is dropped and retried a second later (that would time the kernel's timer).
const CONNECT_WINDOW = 400;

function replayStorms({ clients, stalled, big }) {
  const k = `${clients / 1000}k`;
  return [
    // 1,000 events of 1 KiB (the whole default history, 1 MiB), each client 100 back: 100 KiB each,
    // 1 GB for 10,000, so that replay is most of the bytes; still within what the kernel's socket
    // buffers take from a reader, so the pace is the server's (and, here, the connect rate's).
    {
      kind: 'replay',
      name: `replay storm ${k}`,
      clients,
      variants: REPLAY_VARIANTS,
      history: [{ topic: 'bench', count: HISTORY, size: EVENT }],
      resumeAfter: HISTORY - OWED, // the id the clients send: that of event 900
      readers: { topic: 'bench', firstSeq: HISTORY - OWED + 1, eventSize: EVENT },
    },
    // 16 KiB events: a replay is 1.6 MiB, and bytes, not events, are the work. Fewer clients: at
    // 10,000 it would be 16 GB through loopback, past what the kernel lets TCP hold here
    // (tcp_mem, about 2 GiB), so the rest would wait in the server; the code before issue 10
    // copies each replay per client, and could need twice that, more than this machine has.
    ...(big
      ? [
          {
            kind: 'replay',
            name: `replay storm ${big / 1000}k, 16 KiB events`,
            clients: big,
            variants: REPLAY_VARIANTS,
            history: [{ topic: 'bench', count: HISTORY, size: BIG_EVENT }],
            resumeAfter: HISTORY - OWED,
            readers: { topic: 'bench', firstSeq: HISTORY - OWED + 1, eventSize: BIG_EVENT },
          },
        ]
      : []),
    // The same, but `stalled` of the clients read nothing, on a topic of their own whose 100 events
    // are 64 KiB: every client sends the id of event 800; a reader is owed events 901–1000 of
    // `bench`, a non-reader events 801–900 of `big` (6.4 MiB). The history: 1,000 events, 7.3 MiB.
    {
      kind: 'replay-stall',
      name: `replay storm ${k}, ${stalled} never read`,
      clients,
      stalled,
      variants: REPLAY_VARIANTS,
      history: [
        { topic: 'bench', count: HISTORY - 2 * OWED, size: EVENT },
        { topic: 'big', count: OWED, size: STALL_EVENT },
        { topic: 'bench', count: OWED, size: EVENT },
      ],
      resumeAfter: HISTORY - 2 * OWED,
      readers: { topic: 'bench', firstSeq: HISTORY - OWED + 1, eventSize: EVENT },
      nonReaders: { topic: 'big', eventSize: STALL_EVENT },
    },
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
  storm: 90_000, // every client of a replay storm to catch up
  // Non-readers to be disconnected: the hub's default slowClientTimeout (10 s) from the storm,
  // plus as much again for the storm itself to pass.
  eviction: 20_000,
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

/**
 * Connections one hub process of the hub-workers section can hold: its open files, with room for
 * the rest of them (20,000 here: 18,000). Not the ephemeral ports: its load clients are processes
 * of their own, each on its own 127.0.0.x.
 */
function maxPerHubProcess() {
  return softFdLimit() - 2_000;
}

// ---------------------------------------------------------------------------------------------
// Processes

async function startServer(variant, file = variant) {
  const server = new Child(join(here, 'servers', `${file}.mjs`), `${variant} server`);
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

async function fanOut(procs, scenario) {
  const { connected, connectSeconds, notes } = await connectFanOut(procs, scenario.clients);
  const measured = await measureFanOut(procs, { ...scenario, connected });
  return { ...measured, connectSeconds, notes: [...notes, ...measured.notes] };
}

/** Connects `clients` clients of the load client to the server, and waits for the server to count them. */
async function connectFanOut({ server, client }, clients) {
  const notes = [];
  const conn = await client.request('connect', { port: server.port, path: PATH, count: clients }, TIMEOUT.connect + 5_000);
  if (conn.failed) notes.push(`${conn.failed} of ${clients} clients failed to connect`);
  const subscribed = await waitForConnections(server, (n) => n >= conn.connected, TIMEOUT.subscribed);
  if (subscribed < conn.connected) notes.push(`server counts ${subscribed} of ${conn.connected} connections`);
  return { connected: conn.connected, connectSeconds: conn.ms / 1000, notes };
}

/**
 * One fan-out over connections already open: `events` events (at `rate` per second, or one per
 * event-loop turn), to `connected` clients, then the server's CPU from the first publish until the
 * last event arrived, and what the client got. `evictedBefore`: the hub's eviction count before this
 * run (its `stats` are totals since the server started).
 */
async function measureFanOut({ server, client }, { clients, connected, events, rate }, evictedBefore = 0) {
  const notes = [];
  const expected = connected * events;
  await client.request('expect', { deliveries: expected });
  const complete = client.waitFor('complete', TIMEOUT.delivery);
  const intervalMs = rate ? 1000 / rate : 0; // 0: one event per event-loop turn
  const run = await server.request('run', { events, size: PAYLOAD, intervalMs }, TIMEOUT.delivery);
  if (!(await complete)) notes.push(`timed out after ${TIMEOUT.delivery / 1000} s waiting for every event`);
  const cpu = await server.request('cpu');
  const got = await client.request('report');
  const libraryStats = await server.request('stats');
  if (libraryStats?.evicted > evictedBefore) notes.push(`the hub evicted ${libraryStats.evicted - evictedBefore} slow clients`);

  if (got.closedEarly) notes.push(`${got.closedEarly} connections closed by the server`);
  const seconds = (got.lastRecvUs - run.firstUs) / 1e6;
  const ms = (us) => (us == null ? null : us / 1000);
  return {
    clients: connected,
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
    libraryStats,
    notes,
  };
}

/** Rounds of the paced fan-outs (`pacedFanOut`): 3, or 2 with --quick. */
const PACED_ROUNDS = { full: 3, quick: 2 };
/** The paced rows' figures: the median of a variant's rounds for each (see `pacedFanOut`). */
const PACED_MEDIANS = {
  same: ['clients', 'events', 'expected'],
  of: [
    'deliveries',
    'deliveredPct',
    'seconds',
    'deliveriesPerSec',
    'serverCpuUs',
    'serverCpuUsPublishing',
    'cpuUsPerDelivery',
    'clientCpuUs',
    'latencyMs.p50',
    'latencyMs.p99',
    'latencyMs.max',
  ],
};
/** The per-round ratios kept for the paced rows (server CPU µs/delivery, a ÷ b in the same round). */
const PACED_RATIOS = [
  ['hub', 'raw-socket'],
  ['hub', 'raw'],
];

/**
 * A scenario run in rounds, as bench/mercure.mjs runs its section: a server and a load client per
 * variant, all up at once; `prepare` (connecting, a warm-up) for each; then `rounds` rounds, in
 * each of which every variant runs `measure` once, one after the other (the others idle), the
 * order rotating from round to round; then `finish` for each. A variant's row is the median of its
 * rounds, metric by metric (`fields`), with what `prepare` and `finish` put in its `row`; `rounds`
 * keeps each round's figures, and `ratioByRound` the per-round ratios of `ratios` ([a, b]: a's
 * `metric` ÷ b's, on a's row). Why: one run per variant on its own processes, one after the other,
 * sees the machine at different speeds (here it drifts by up to 2× over minutes), and moved the
 * ratios by ±25% from run to run.
 * @param {{ prepare(procs, state): Promise<void>, measure(procs, state, round: number): Promise<object>,
 *   finish?(procs, state): Promise<void>, fields: object, ratios: string[][], metric: string }} steps
 *   `state` is the variant's: `notes` to add to, `row` for its row's own figures, and what the steps keep
 */
async function inRounds(scenario, variants, rounds, { prepare, measure, finish, fields, ratios, metric }) {
  const started = performance.now();
  const procs = {};
  const state = Object.fromEntries(variants.map((v) => [v, { runs: [], notes: [], row: {} }]));
  const fail = (variant, err) => (state[variant].error ??= String(err?.message ?? err));
  const live = () => variants.filter((v) => state[v].error === undefined);
  const each = async (variant, step) => {
    try {
      await step(procs[variant], state[variant]);
    } catch (err) {
      fail(variant, err);
    }
  };
  try {
    await Promise.all(
      variants.map((variant) =>
        each(variant, async () => {
          procs[variant] = { variant };
          procs[variant].server = await startServer(variant);
          procs[variant].client = await startClient();
        }),
      ),
    );
    // One server at a time: connecting is what the machine's cores are busiest with.
    for (const variant of live()) await each(variant, prepare);
    for (let round = 0; round < rounds; round++) {
      const order = variants.map((_, i) => variants[(i + round) % variants.length]);
      for (const variant of order.filter((v) => state[v].error === undefined)) {
        await each(variant, async (p, s) => s.runs.push({ round, ...(await measure(p, s, round)) }));
      }
    }
    if (finish) for (const variant of live()) await each(variant, finish);
  } finally {
    await Promise.all(Object.values(procs).flatMap((p) => [p.client?.stop(), p.server?.stop()]));
    process.stderr.write(`  ${scenario.name} / ${variants.join(', ')}, ${rounds} rounds: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
  const results = variants.map((variant) => {
    const { runs, notes, error, row: own } = state[variant];
    const row = { scenario: scenario.name, kind: scenario.kind, variant };
    if (runs.length === 0) return { ...row, error: error ?? 'no round ran', notes };
    return { ...row, ...medians(runs, fields), ...own, rounds: runs, notes: error ? [...notes, error] : notes };
  });
  const byVariant = Object.fromEntries(results.map((r) => [r.variant, r]));
  for (const [a, b] of ratios) {
    if (!byVariant[a]?.rounds || !byVariant[b]?.rounds) continue;
    byVariant[a].ratioByRound ??= {};
    byVariant[a].ratioByRound[`${a} ÷ ${b}`] = byVariant[a].rounds.map((run) => {
      const other = byVariant[b].rounds.find((x) => x.round === run.round);
      return other ? run[metric] / other[metric] : null;
    });
  }
  return results;
}

/**
 * A paced fan-out (a scenario with `rate`), in rounds (`inRounds`): every client connected first;
 * a warm-up (a tenth of the events, at least 10, not measured: the first fan-out in a process runs
 * unoptimised code); each round runs the scenario's events over the same connections.
 */
function pacedFanOut(scenario, variants, rounds) {
  const runOnce = async (procs, s, events, round) => {
    const r = await measureFanOut(procs, { ...scenario, events, connected: s.connected }, s.evicted);
    s.evicted = r.libraryStats?.evicted ?? 0;
    s.row.libraryStats = r.libraryStats;
    s.notes.push(...r.notes.map((note) => `${round === undefined ? 'warm-up' : `round ${round + 1}`}: ${note}`));
    return r;
  };
  return inRounds(scenario, variants, rounds, {
    async prepare(procs, s) {
      const { connected, connectSeconds, notes } = await connectFanOut(procs, scenario.clients);
      Object.assign(s, { connected, evicted: 0 });
      s.row.connectSeconds = connectSeconds;
      s.notes.push(...notes);
      await runOnce(procs, s, Math.max(10, Math.round(scenario.events / 10)));
    },
    measure: (procs, s, round) => runOnce(procs, s, scenario.events, round),
    fields: PACED_MEDIANS,
    ratios: PACED_RATIOS,
    metric: 'cpuUsPerDelivery',
  });
}

/** The line under the main table for the paced rows: how they ran, and the per-round ratios. */
function pacedCaption(results) {
  const rows = results.filter((r) => r.rounds && r.kind === 'fanout');
  if (rows.length === 0) return undefined;
  const counts = [...new Set(rows.map((r) => r.rounds.length))].join(' or ');
  const ratios = [];
  for (const r of rows.filter((x) => x.ratioByRound)) {
    for (const [pair, list] of Object.entries(r.ratioByRound)) {
      ratios.push(`${r.scenario} ${pair}: ${list.map((x) => (x === null ? '—' : `${x.toFixed(2)}×`)).join(', ')}`);
    }
  }
  return (
    `Paced rows: each figure is the median of ${counts} rounds, after a warm-up, with every variant's server (and its load client) up at once and the variants taking turns, the order rotating by round; the ratio columns divide those medians.` +
    (ratios.length ? ` Server CPU µs/delivery per round: ${ratios.join('; ')}.` : '')
  );
}

/** The line under the main table for the churn row: how it ran, and the per-round ratios. */
function churnCaption(results) {
  const rows = results.filter((r) => r.rounds && r.kind === 'churn');
  if (rows.length === 0) return undefined;
  const ratios = rows.flatMap((r) => Object.entries(r.ratioByRound ?? {}).map(([pair, list]) => `${r.scenario} ${pair}: ${list.map((x) => (x === null ? '—' : `${x.toFixed(2)}×`)).join(', ')}`));
  return (
    `Churn: each figure is the median of ${rows[0].rounds.length} rounds of ${rows[0].cycles.toLocaleString('en-US')} cycles, after a warm-up, every variant up at once and taking turns as the paced rows do; heap growth is over all rounds.` +
    (ratios.length ? ` Connects/s per round: ${ratios.join('; ')}.` : '')
  );
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

/** Rounds of the churn row (`churn`): 7, or 3 with --quick. */
const CHURN_ROUNDS = { full: 7, quick: 3 };
const CHURN_MEDIANS = { same: ['cycles'], of: ['connectsPerSec', 'cpuUsPerCycle', 'clientCpuUsPerCycle'] };

/**
 * Connection churn, in rounds (`inRounds`): each round, `cycles` clients connect, get the head and
 * leave, 50 at a time; connects/s, and the server's CPU per cycle, counted until it has seen every
 * client go. A warm-up first (not measured), so that lazily built code and caches are not counted
 * as growth; the heap growth is over all rounds.
 */
function churn(scenario, variants, rounds) {
  const { cycles } = scenario;
  const run = (procs, count) =>
    procs.client.request('churn', { port: procs.server.port, path: PATH, concurrency: 50, count, timeoutMs: TIMEOUT.churn }, TIMEOUT.churn + 5_000);
  const drained = async (procs, s, when) => {
    const left = await waitForConnections(procs.server, (n) => n === 0, TIMEOUT.drain);
    if (left) s.notes.push(`${when}: server still counts ${left} connections after every client left`);
  };
  return inRounds(scenario, variants, rounds, {
    async prepare(procs, s) {
      await run(procs, Math.min(1_000, cycles));
      await drained(procs, s, 'warm-up');
      s.before = await procs.server.request('memory');
    },
    async measure(procs, s, round) {
      await procs.server.request('cpuStart');
      const clientCpu = await procs.client.request('cpu');
      const result = await run(procs, cycles);
      await drained(procs, s, `round ${round + 1}`);
      const cpu = await procs.server.request('cpu');
      const clientUs = (await procs.client.request('cpu')).totalUs - clientCpu.totalUs;
      if (result.failed) s.notes.push(`round ${round + 1}: ${result.failed} of ${cycles} cycles failed`);
      if (result.ok + result.failed < cycles) s.notes.push(`round ${round + 1}: timed out after ${result.ok + result.failed} cycles`);
      return { cycles: result.ok, connectsPerSec: result.ok / (result.ms / 1000), cpuUsPerCycle: cpu.totalUs / result.ok, clientCpuUsPerCycle: clientUs / result.ok };
    },
    async finish(procs, s) {
      const after = await procs.server.request('memory');
      Object.assign(s.row, {
        heapGrowthMiB: (after.heapUsed - s.before.heapUsed) / 2 ** 20,
        rssGrowthMiB: (after.rss - s.before.rss) / 2 ** 20,
        before: s.before,
        after,
      });
    },
    fields: CHURN_MEDIANS,
    ratios: [['hub', 'raw']],
    metric: 'connectsPerSec',
  });
}

/**
 * The replay storm: the server publishes its history before anyone connects, then every client
 * connects at once with a `Last-Event-ID` (as fast as the server answers, at most 400 waiting for
 * a head) and must receive exactly the events it is owed, in order, checked by id. With
 * `stalled`, that many more clients, from a second client process, send their request at the
 * same moment and never read. From before the first connection to the end, the server samples
 * its RSS every 50 ms and every socket's unsent bytes every 250 ms (servers/harness.mjs,
 * `stormProbe`).
 */
async function replayStorm({ server, client, variant }, scenario) {
  const notes = [];
  const stalled = scenario.stalled ?? 0;
  const readers = scenario.clients - stalled;
  const { ids } = await server.request('seed', { groups: scenario.history }, 30_000);
  const resumeId = ids[scenario.resumeAfter - 1];
  const idNumber = (id) => Number(id.slice(id.lastIndexOf('-') + 1));
  const firstSeq = idNumber(ids[scenario.readers.firstSeq - 1]);
  const { statsBefore } = await server.request('stormStart', { evictions: stalled });
  if (statsBefore && statsBefore.history !== HISTORY) notes.push(`the hub holds ${statsBefore.history} events, not ${HISTORY}`);

  let stallClient;
  try {
    let stall = Promise.resolve({ written: 0, failed: 0 });
    if (stalled) {
      stallClient = await startClient();
      const path = `/events?topic=${scenario.nonReaders.topic}`;
      stall = stallClient.request('stall', { port: server.port, path, count: stalled, lastEventId: resumeId }, TIMEOUT.connect);
    }
    const storm = await client.request(
      'storm',
      {
        port: server.port,
        path: `/events?topic=${scenario.readers.topic}`,
        count: readers,
        lastEventId: resumeId,
        firstSeq,
        events: OWED,
        window: CONNECT_WINDOW,
        timeoutMs: TIMEOUT.storm,
      },
      TIMEOUT.storm + 5_000,
    );
    // At once: the server's CPU clock stops when the last client has caught up.
    const caughtUp = await server.request('stormCaughtUp');
    const stallResult = await stall;
    if (stallResult.failed) notes.push(`${stallResult.failed} of ${stalled} non-readers failed to send their request`);
    if (storm.timedOut) notes.push(`timed out after ${TIMEOUT.storm / 1000} s with ${storm.caughtUp} of ${readers} caught up`);
    if (storm.noHead) notes.push(`${storm.noHead} of ${readers} clients got no 200 head`);
    if (storm.wrongOrder) notes.push(`${storm.wrongOrder} clients got an id out of order`);
    if (storm.extra) notes.push(`${storm.extra} clients got more than ${OWED} events`);
    if (storm.short) notes.push(`${storm.short} clients got fewer than ${OWED} events${storm.closedEarly ? ` (${storm.closedEarly} closed by the server)` : ''}`);
    const evictedByNow = caughtUp.stats ? caughtUp.stats.evicted - statsBefore.evicted : 0;
    if (caughtUp.connections + evictedByNow < scenario.clients) {
      notes.push(`the server held ${caughtUp.connections} of ${scenario.clients} connections when the readers had caught up (${evictedByNow} evicted)`);
    }
    if (storm.cpuUs > 0.9 * storm.ms * 1000) notes.push(`the load client used ${(storm.cpuUs / 1000 / storm.ms).toFixed(2)} of a core: it may have limited the pace`);

    // Non-readers: are they disconnected, and when (the probe notes the moment, within 50 ms)?
    // Only the hub has a rule for them; the raw server holds them until they go (and they never
    // go), so it is not waited for.
    let evicted = null;
    if (stalled && caughtUp.stats) {
      const deadline = Date.now() + TIMEOUT.eviction;
      for (;;) {
        evicted = (await server.request('stats')).evicted - statsBefore.evicted;
        if (evicted >= stalled || Date.now() >= deadline) break;
        await sleep(250);
      }
      if (evicted < stalled) notes.push(`${evicted} of ${stalled} non-readers disconnected within ${TIMEOUT.eviction / 1000} s of the readers catching up`);
    }
    const stop = await server.request('stormStop');
    const evictedAfterS = stop.evictedAtS;
    const replayed = storm.received;
    const largestEvent = Math.max(scenario.readers.eventSize, scenario.nonReaders?.eventSize ?? 0);
    return {
      clients: scenario.clients,
      readers,
      stalled,
      owed: OWED,
      resumeId,
      caughtUpSeconds: storm.caughtUpMs / 1000,
      connectsPerSec: storm.heads / (storm.connectMs / 1000),
      deliveredPct: (100 * storm.caughtUp) / readers,
      replayed,
      cpuUsPerReplayed: caughtUp.cpu.totalUs / replayed,
      serverCpuUs: caughtUp.cpu.totalUs,
      clientCpuUs: storm.cpuUs,
      rssBeforeMiB: stop.rssBefore / 2 ** 20,
      peakRssMiB: stop.peakRss / 2 ** 20,
      rssGrowthMiB: (stop.peakRss - stop.rssBefore) / 2 ** 20,
      peakUnsentKiB: stop.peakUnsentPerSocket / 1024,
      peakUnsentTotalMiB: stop.peakUnsentTotal / 2 ** 20,
      // The lead's design: a client holds at most the high-water mark plus one event unsent in the
      // server (the event framed: its data plus under 100 bytes of id, type and chunk framing).
      unsentBoundKiB: variant === 'hub' ? unsentBound(largestEvent) / 1024 : undefined,
      readerEventSize: scenario.readers.eventSize,
      nonReaderEventSize: scenario.nonReaders?.eventSize,
      evicted,
      evictedAfterS,
      storm,
      stall: stallResult,
      caughtUp,
      probe: stop,
      notes,
    };
  } finally {
    await stallClient?.stop();
  }
}

/** Unsent bytes the design lets one client hold in the server: the high-water mark and one framed event. */
function unsentBound(eventSize) {
  return HIGH_WATER_MARK + eventSize + 100;
}

/**
 * The hub's storm rows against the design's bound: every client at most the high-water mark plus
 * one event unsent, so the RSS growth at most that for every client plus what a connection costs
 * anyway (the idle row's RSS per connection, when it ran in the same run). Loose where readers
 * are many (each could be that far behind; they rarely are), tight per client.
 */
function replayBounds(results) {
  const idle = results.find((r) => r.kind === 'idle' && r.variant === 'hub' && !r.error);
  const lines = [];
  for (const r of results) {
    if (!r.kind?.startsWith('replay') || r.variant !== 'hub' || r.error) continue;
    const kib = (bytes) => (bytes / 1024).toFixed(0);
    const perClient = `${kib(unsentBound(r.readerEventSize))} KiB${r.stalled ? ` (${kib(unsentBound(r.nonReaderEventSize))} KiB for a non-reader)` : ''}`;
    const unsentMiB = (r.readers * unsentBound(r.readerEventSize) + r.stalled * unsentBound(r.nonReaderEventSize ?? 0)) / 2 ** 20;
    const overheadMiB = idle ? (r.clients * idle.rssKiBPerConn) / 1024 : undefined;
    const boundMiB = unsentMiB + (overheadMiB ?? 0);
    lines.push(
      `- ${r.scenario} / hub: peak unsent ${r.peakUnsentKiB.toFixed(0)} KiB per client, bound ${perClient} ` +
        `(high-water mark 64 KiB + one event): ${r.peakUnsentKiB <= r.unsentBoundKiB ? 'within' : 'EXCEEDED'}. ` +
        `RSS growth ${r.rssGrowthMiB.toFixed(0)} MiB, bound ${boundMiB.toFixed(0)} MiB = ${unsentMiB.toFixed(0)} MiB unsent at most` +
        (overheadMiB === undefined
          ? ' (plus what the connections cost: run the idle row to have it counted)'
          : ` + ${r.clients.toLocaleString('en-US')} × ${idle.rssKiBPerConn.toFixed(1)} KiB per connection (idle row)`) +
        `: ${r.rssGrowthMiB <= boundMiB ? 'within' : overheadMiB === undefined ? 'over the unsent share alone' : 'EXCEEDED'}.`,
    );
  }
  return lines;
}

const SCENARIO = { fanout: fanOut, idle, replay: replayStorm, 'replay-stall': replayStorm };

/** One scenario for one variant, on fresh processes that are always stopped afterwards. */
async function runOne(scenario, variant) {
  const started = performance.now();
  let procs = {};
  try {
    const file = SERVER_FILE[`${scenario.kind.split('-')[0]}/${variant}`] ?? variant;
    procs = { server: await startServer(variant, file), client: await startClient(), variant };
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
  const mercureClients = flags.mercure ? [mercureConnections(flags)] : [];
  // The hub-workers section spreads its connections over processes: what one of them holds at most.
  const hubWorkersPlanned = flags.hubWorkers ? hubWorkersPlan(flags) : undefined;
  const hubWorkersClients = hubWorkersPlanned ? [hubWorkersPlanned.perClient, ...hubWorkersPlanned.rows.filter((row) => row.workers === 1).map((row) => row.connections)] : [];
  const needed = Math.max(...list.map((s) => s.clients ?? 0), ...hubServerClients, ...mercureClients, ...hubWorkersClients) + 500;
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
  const reconnect = [];
  for (const scenario of list) {
    if (scenario.kind === 'reconnect') {
      // Its own table (bench/reconnect.mjs): hub and raw as --only picks them, and the hub server
      // and Redis variants with their sections.
      const variants = [...['hub', 'raw'].filter((v) => flags.only.includes(v)), ...(flags.hubServer ? [HUB_SERVER] : []), ...(flags.redis ? [REDIS] : [])];
      for (const variant of variants) {
        const t0 = performance.now();
        const r = await runReconnectStorm(scenario, variant).catch((err) => ({ error: String(err?.message ?? err), notes: [] }));
        reconnect.push({ scenario: scenario.name, kind: scenario.kind, variant, ...r });
        process.stderr.write(`  ${scenario.name} / ${variant}: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      }
      continue;
    }
    const allowed = (v) => (scenario.variants ? scenario.variants.includes(v) : scenario.kind === 'fanout' || !FANOUT_ONLY.has(v));
    if (scenario.kind === 'churn') {
      results.push(...(await churn(scenario, flags.only.filter(allowed), flags.quick ? CHURN_ROUNDS.quick : CHURN_ROUNDS.full)));
      continue;
    }
    if (scenario.kind === 'fanout' && scenario.rate) {
      results.push(...(await pacedFanOut(scenario, flags.only.filter(allowed), flags.quick ? PACED_ROUNDS.quick : PACED_ROUNDS.full)));
      continue;
    }
    for (const variant of flags.only.filter(allowed)) {
      const r = await runOne(scenario, variant);
      results.push({ scenario: scenario.name, kind: scenario.kind, variant, ...r });
    }
  }
  const hubServer = flags.hubServer ? await runHubServerSection(flags, cap) : [];
  const hubWorkersStarted = performance.now();
  const hubWorkers = flags.hubWorkers ? await runHubWorkersSection(flags, maxPerHubProcess()) : [];
  const hubWorkersSeconds = flags.hubWorkers ? (performance.now() - hubWorkersStarted) / 1000 : undefined;
  if (flags.hubWorkers) process.stderr.write(`${HUB_WORKERS}: ${hubWorkersSeconds.toFixed(1)} s\n`);
  const redis = flags.redis ? await runRedisSection(flags) : undefined;
  const mercure = flags.mercure ? await runMercureSection(flags, cap) : [];
  const seconds = (performance.now() - started) / 1000;

  const table = renderTable(results, flags.only, RATIOS.filter((pair) => pair.every((v) => flags.only.includes(v))));
  const hubServerTable = renderHubServerTable(hubServer);
  const hubWorkersTable = hubWorkers.length ? renderHubWorkersTable(hubWorkers) : undefined;
  const reconnectTable = reconnect.length ? renderReconnectTable(reconnect) : undefined;
  const problems = [...results, ...reconnect]
    .filter((r) => r.error || r.notes?.length)
    .map((r) => `- ${r.scenario} / ${r.variant}: ${r.error ?? r.notes.join('; ')}`);
  for (const r of reconnect.filter((r) => r.skipped)) problems.push(`- ${r.scenario} / ${r.variant}: skipped: ${r.skipped}`);
  for (const r of hubServer.filter((r) => r.error || r.notes?.length)) problems.push(`- ${r.scenario} / ${HUB_SERVER}: ${r.error ?? r.notes.join('; ')}`);
  for (const r of hubWorkers.filter((r) => r.error || r.notes?.length)) problems.push(`- ${r.scenario} / ${HUB_WORKERS}: ${r.error ?? r.notes.join('; ')}`);
  for (const r of (redis?.results ?? []).filter((r) => r.error || r.notes?.length)) problems.push(`- ${r.scenario} / ${r.variant}: ${r.error ?? r.notes.join('; ')}`);
  for (const r of mercure.filter((r) => r.error || r.notes?.length)) problems.push(`- ${r.scenario} / ${r.variant}: ${r.error ?? r.notes.join('; ')}`);
  const pacedNote = [pacedCaption(results), churnCaption(results)].filter(Boolean).join('\n\n') || undefined;
  if (results.length) console.log(`\n${table}\n${pacedNote ? `\n${pacedNote}\n` : ''}`);
  if (reconnectTable) console.log(`\n${reconnectTable}\n`);
  if (hubServer.length) console.log(`\n${hubServerTable}\n`);
  if (hubWorkersTable) console.log(`\n${hubWorkersCaption(hubWorkers)} (${hubWorkersSeconds.toFixed(0)} s):\n\n${hubWorkersTable}\n`);
  const redisTable = redis && renderRedisTable(redis);
  if (redis && (redis.skipped !== undefined || redis.results.length)) console.log(`\n${redisTable}\n`);
  const mercureTable = mercure.length ? renderMercureTable(mercure) : undefined;
  if (mercureTable) console.log(`\n${mercureTable}\n`);
  const bounds = replayBounds(results);
  if (bounds.length) console.log(`Replay storms (hub and raw only: better-sse keeps no history), the hub against its design's bound:\n${bounds.join('\n')}\n`);
  if (problems.length) console.log(`Problems:\n${problems.join('\n')}\n`);
  // The browser client's size: one esbuild bundle, well under a second, so every run has it.
  const client = await clientSize().catch((err) => ({ error: String(err?.message ?? err) }));
  console.log(
    client.error === undefined
      ? `serve-sse/client: ${client.minified.toLocaleString('en-US')} bytes minified, ${client.gzipped.toLocaleString('en-US')} gzipped (budget ${CLIENT_SIZE_BUDGET.toLocaleString('en-US')}).\n`
      : `serve-sse/client: size not measured (${client.error}).\n`,
  );
  console.log(
    `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ` +
      `${PAYLOAD}-byte events in the fan-outs, ${seconds.toFixed(0)} s.`,
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
    pacedNote,
    bounds,
    reconnect,
    reconnectTable,
    hubServer,
    hubServerTable,
    hubWorkers,
    hubWorkersTable,
    hubWorkersSeconds,
    redis,
    redisTable,
    mercure,
    mercureTable,
    client,
  };
  writeFileSync(join(out, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
}

runMain(main);
