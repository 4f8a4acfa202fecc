// The Mercure section of the benchmark (`node bench/run.mjs --only=mercure`; issue 11): fan-out
// through the Mercure endpoint against the native hub, in the same run, on the same load client
// code. See bench/README.md, "Mercure".
//
// - `hub`: servers/hub.mjs, every client on `/events?topic=bench` (the main table's `hub` variant);
// - `mercure`: servers/hub-mercure.mjs, `mercureHandler(hub, { publisherKey, subscriptions: false })`
//   at /.well-known/mercure, half the clients with the exact topic
//   `?topic=https://example.com/bench/1` and half with the URI template
//   `?topic=https://example.com/bench/{id}` (draft-07 selectors; both match the topic every event
//   is published on);
// - `mercure, HTTP POST`: the same server, its events POSTed as Mercure forms with a JWT by a
//   publisher process (hub-publisher.mjs) instead of published in-process;
// - `mercure, subscriptions on`: a server like `mercure`'s with active subscriptions on (the
//   default, as the hub server runs).
//
// Except over HTTP, events are published in the server process (`hub.publish`, the harness's
// `run`), so that the rows measure the fan-out, not HTTP publishing: `mercure` is the figure the
// target is about (Mercure's server CPU per delivery within 1.5× the native hub's). Fresh processes
// for every scenario; within one, every server is up at once and the variants take turns, for
// several rounds (runMercureSection says why). Every wait is bounded.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { startChild } from './lib/child.mjs';
import { MERCURE_PATH, PUBLISHER_KEY, TEMPLATE, TOPIC } from './lib/mercure-topics.mjs';
import { median, medians } from './lib/stats.mjs';
import { renderTable } from './lib/table.mjs';

export const SECTION = 'mercure';

const here = dirname(fileURLToPath(import.meta.url));
const PAYLOAD = 64;
/** The target of issue 11: Mercure's server CPU per delivery at most this many times the native hub's. */
export const TARGET = 1.5;
const SECTION_BUDGET = 240_000;
const TIMEOUT = { ready: 10_000, connect: 60_000, subscribed: 15_000, delivery: 60_000 };

/**
 * With BENCH_PROFILE_DIR=<dir>, every in-process round is profiled in its server (the measured
 * phase only, from the first publish to the last delivery; servers/harness.mjs, `profileStart`):
 * <dir>/<scenario>.<variant>.r<round>.cpuprofile. The profiler costs CPU: figures from such a run
 * are not the bench's.
 */
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;

/** Events of the warm-up every server gets before the measured rounds, flat out. */
const WARM_UP_EVENTS = 50;

const EXACT_PATH = `${MERCURE_PATH}?topic=${encodeURIComponent(TOPIC)}`;
const TEMPLATE_PATH = `${MERCURE_PATH}?topic=${encodeURIComponent(TEMPLATE)}`;

/**
 * Servers: each holds its own clients. `paths`: how those subscribe, in equal shares (connected one
 * share after the other, each sampled on every 10th client).
 */
const SERVERS = [
  { name: 'hub', file: 'hub.mjs', paths: ['/events?topic=bench'] },
  // Active subscriptions off for the delivery figure: see `mercure, subscriptions on`.
  { name: 'mercure', file: 'hub-mercure.mjs', args: ['--no-subscriptions'], paths: [EXACT_PATH, TEMPLATE_PATH] },
  { name: 'mercure, subscriptions on', file: 'hub-mercure.mjs', paths: [EXACT_PATH, TEMPLATE_PATH] },
];
/**
 * Variants: a server, and how its events are published (in its own process, or POSTed over HTTP).
 * `mercure` is the one the target is about. `mercure, subscriptions on` is Mercure as the hub
 * server runs it: each connection published a subscription event (private, seen by none of these
 * clients) as it opened, so the history (1,000 events by default) is full of them, each on a topic
 * of its own, when the rounds start, and each of the next 1,000 publications evicts one, which
 * costs that publication more (the README's Mercure section has the figures).
 */
const VARIANTS = [
  { name: 'hub', server: 'hub', publish: 'in-process' },
  { name: 'mercure', server: 'mercure', publish: 'in-process' },
  { name: 'mercure, HTTP POST', server: 'mercure', publish: 'http' },
  { name: 'mercure, subscriptions on', server: 'mercure, subscriptions on', publish: 'in-process' },
];
export const MERCURE_VARIANTS = VARIANTS.map((v) => v.name);

/**
 * Paced: a rate the native hub and Mercure both keep up with (5 events/s to 10,000 clients, as in
 * the main table's `paced 10k×30 @5/s`), nothing to batch: the cost of one event. Flat out: one
 * event per event-loop turn in-process (as `fan-out 10k×100`), 16 requests in flight over HTTP.
 * `rounds`: measured runs per variant, alternating between the variants (see runMercureSection),
 * after a warm-up.
 */
export function mercurePlan({ quick }) {
  const clients = quick ? 2_000 : 10_000;
  const k = `${clients / 1000}k`;
  return {
    clients,
    // Flat-out rounds take a second each and vary more (how many events share a write depends on
    // how fast each flush goes): more of them.
    scenarios: quick
      ? [
          { name: `mercure paced ${k}×20 @10/s`, events: 20, rate: 10, rounds: 2 },
          { name: `mercure fan-out ${k}×100`, events: 100, rounds: 3 },
        ]
      : [
          { name: `mercure paced ${k}×30 @5/s`, events: 30, rate: 5, rounds: 3 },
          { name: `mercure fan-out ${k}×100`, events: 100, rounds: 7 },
        ],
  };
}

/** Connections one process holds at once (each server has its own load client). */
export function mercureConnections(flags) {
  return mercurePlan(flags).clients;
}

const start = (file, label, args, within) => startChild(join(here, file), label, args, within(TIMEOUT.ready));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Per scenario, on fresh processes: every server at once (the native hub and the Mercure ones),
 * each with `clients` connections from a load client of its own, and a publisher process. After a
 * warm-up, `rounds` rounds; in each, every variant publishes the scenario's events once, one
 * variant after the other (the order rotating from round to round), the other servers idle. A variant's row is the
 * median of its rounds, metric by metric; the target is judged on the median of the per-round
 * ratios (Mercure's CPU per delivery ÷ the hub's in the same round). Why not one run per variant
 * on its own processes, as in the main table: on the 2-vCPU VM used here (shared with other work)
 * the CPU per delivery of one and the same variant moved by ±40% from one run to the next, too much
 * to judge a 1.5× target by; rounds close in time and alternating see the same machine.
 */
export async function runMercureSection(flags, cap) {
  const plan = mercurePlan(flags);
  const scenarios = plan.scenarios.filter((s) => flags.scenario === undefined || s.name.includes(flags.scenario));
  // Each server has a load client of its own (one process could not hold them all here: 20,000
  // fds is a common hard limit). Ephemeral ports: Linux gives connections to different servers
  // (destination ports) the same local ports, so 3 × 10,000 fit in its default range of 28,232.
  const clients = Math.min(plan.clients, cap);
  if (clients < plan.clients) process.stderr.write(`${SECTION}: capped at ${clients} clients per server\n`);
  const deadline = Date.now() + SECTION_BUDGET;
  const within = (ms) => Math.max(1, Math.min(ms, deadline - Date.now()));
  const token = await new SignJWT({ mercure: { publish: ['*'] } }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(PUBLISHER_KEY));
  const results = [];
  for (const scenario of scenarios) {
    const name = clients < plan.clients ? `${scenario.name} (capped at ${clients})` : scenario.name;
    const started = performance.now();
    const procs = [];
    const runs = Object.fromEntries(VARIANTS.map((v) => [v.name, []]));
    const setupNotes = [];
    let error;
    try {
      if (Date.now() >= deadline) throw new Error(`skipped: the section's ${SECTION_BUDGET / 1000} s budget is spent`);
      const servers = {};
      const loadClients = {};
      for (const server of SERVERS) {
        procs.push((servers[server.name] = await start(join('servers', server.file), `${server.name} server`, [...(server.args ?? []), '--count-writes'], within)));
        procs.push((loadClients[server.name] = await start('client.mjs', `${server.name} client`, [], within)));
      }
      const publisher = await start('hub-publisher.mjs', 'publisher', [], within);
      procs.push(publisher);
      const connected = {};
      for (const server of SERVERS) connected[server.name] = await connect(servers[server.name], loadClients[server.name], server.paths, clients, within, setupNotes);
      // A warm-up, not measured: the first fan-out in a process runs code not yet optimised, and
      // costs up to twice a later one; the rounds compare servers in their steady state.
      for (const server of SERVERS) {
        const warm = await measure({ server: servers[server.name], connected: connected[server.name], client: loadClients[server.name], within }, { publish: 'in-process' }, { events: WARM_UP_EVENTS });
        if (warm.notes.length) setupNotes.push(`warm-up of ${server.name}: ${warm.notes.join('; ')}`);
      }
      for (let round = 0; round < scenario.rounds; round++) {
        const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
        for (const variant of order) {
          if (Date.now() >= deadline) throw new Error(`stopped after ${round} rounds: the section's ${SECTION_BUDGET / 1000} s budget is spent`);
          const context = { server: servers[variant.server], connected: connected[variant.server], client: loadClients[variant.server], publisher, token, within };
          const profile = PROFILE_DIR && variant.publish === 'in-process' ? join(PROFILE_DIR, `${scenario.name.replace(/\W+/g, '-')}.${variant.name}.r${round + 1}.cpuprofile`) : undefined;
          runs[variant.name].push({ round, ...(await measure(context, variant, scenario, profile)) });
        }
      }
    } catch (err) {
      error = String(err?.message ?? err);
    } finally {
      await Promise.all(procs.map((child) => child.stop()));
      process.stderr.write(`  ${name}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    }
    for (const variant of VARIANTS) {
      const list = runs[variant.name];
      const notes = [...setupNotes, ...list.flatMap((r) => r.notes.map((note) => `round ${r.round + 1}: ${note}`))];
      const saturated = list.filter((r) => r.clientSaturated).length;
      if (saturated) notes.push(`the load client used over 0.9 of a core in ${saturated} of ${list.length} rounds: latency includes its backlog`);
      if (list.length === 0) results.push({ scenario: name, kind: 'mercure', variant: variant.name, error: error ?? 'no round ran', notes });
      else results.push({ scenario: name, kind: 'mercure', variant: variant.name, ...medians(list, MEDIANS), rounds: list, notes: error ? [...notes, error] : notes });
    }
    // The ratio in each round, against the hub's run of the same round.
    for (const r of results.filter((x) => x.scenario === name && x.variant !== 'hub' && x.rounds)) {
      r.ratioByRound = r.rounds.map((run) => {
        const hub = runs.hub.find((h) => h.round === run.round);
        return hub ? run.cpuUsPerDelivery / hub.cpuUsPerDelivery : null;
      });
      r.ratio = median(r.ratioByRound.filter((x) => x !== null));
    }
  }
  return results;
}

/** Connects `count` clients to one server, each path's share in turn; waits for the server to count them. */
async function connect(server, client, paths, count, within, notes) {
  const started = performance.now();
  let connected = 0;
  for (const [i, path] of paths.entries()) {
    const share = Math.floor(count / paths.length) + (i < count % paths.length ? 1 : 0);
    const connectMs = within(TIMEOUT.connect);
    const conn = await client.request('connect', { port: server.port, path, count: share, timeoutMs: connectMs }, connectMs + 5_000);
    if (conn.failed) notes.push(`${conn.failed} of ${share} clients on ${path} failed to connect`);
    connected += conn.connected;
  }
  const countedBy = Date.now() + within(TIMEOUT.subscribed);
  let counted = 0;
  while ((counted = (await server.request('connections')).count) < connected && Date.now() < countedBy) await sleep(100);
  if (counted < connected) notes.push(`the ${server.label} counts ${counted} of ${connected} connections`);
  server.connectSeconds = (performance.now() - started) / 1000;
  return connected;
}

/**
 * One round of one variant: a full GC in the server first (so that earlier work's garbage is not
 * collected on the measured clock; every variant alike), then the events, and the wait for every
 * delivery. The server's CPU clock runs from the first publish (in-process) or from just before the
 * first request (HTTP) until the last event has arrived.
 */
async function measure({ server, connected, client, publisher, token, within }, variant, { events, rate }, profile) {
  const notes = [];
  await server.request('memory');
  if (profile) {
    mkdirSync(dirname(profile), { recursive: true });
    await server.request('profileStart');
  }
  const statsBefore = await server.request('stats');
  const writesBefore = (await server.request('writes')).count;
  await client.request('expect', { deliveries: connected * events });
  const complete = client.waitFor('complete', within(TIMEOUT.delivery));
  let run;
  if (variant.publish === 'http') {
    await server.request('cpuStart');
    const publishMs = within(TIMEOUT.delivery);
    // Paced: one request at a time at its slot; flat out: 16 in flight, as in the hub-server section.
    run = await publisher.request(
      'publish',
      { port: server.port, token, topic: TOPIC, events, concurrency: rate ? 1 : 16, rate, size: PAYLOAD, timeoutMs: publishMs, mercure: true },
      publishMs + 5_000,
    );
    if (run.failed) notes.push(`${run.failed} publishes failed (${JSON.stringify(run.statuses)})`);
    if (run.ok + run.failed < events) notes.push(`timed out after ${run.ok + run.failed} of ${events} publishes`);
  } else {
    run = await server.request('run', { events, size: PAYLOAD, intervalMs: rate ? 1000 / rate : 0 }, within(TIMEOUT.delivery) + 5_000);
  }
  if (!(await complete)) notes.push('timed out waiting for every event');
  const cpu = await server.request('cpu');
  const writes = (await server.request('writes')).count - writesBefore;
  if (profile) await server.request('profileStop', { file: profile });
  const got = await client.request('report');
  const stats = await server.request('stats');
  if (stats?.evicted > statsBefore?.evicted) notes.push(`the hub evicted ${stats.evicted - statsBefore.evicted} slow clients`);
  if (got.closedEarly) notes.push(`${got.closedEarly} connections closed by the server`);
  const seconds = (got.lastRecvUs - run.firstUs) / 1e6;
  const clientSaturated = got.cpuUs > 0.9 * seconds * 1e6;
  const ms = (us) => (us == null ? null : us / 1000);
  return {
    clients: connected,
    publish: variant.publish,
    events,
    rate,
    deliveries: got.deliveries,
    expected: connected * events,
    deliveredPct: (100 * got.deliveries) / (connected * events),
    seconds,
    deliveriesPerSec: got.deliveries / seconds,
    serverCpuUs: cpu.totalUs,
    serverCpu: cpu,
    cpuUsPerDelivery: cpu.totalUs / got.deliveries,
    userUsPerDelivery: cpu.userUs / got.deliveries,
    // Socket writes: how many events each carried, and what one cost (the server's CPU ÷ writes).
    writes,
    deliveriesPerWrite: got.deliveries / writes,
    cpuUsPerWrite: cpu.totalUs / writes,
    clientCpuUs: got.cpuUs,
    clientSaturated,
    latencyMs: { p50: ms(got.latencyUs.p50), p99: ms(got.latencyUs.p99), max: ms(got.latencyUs.max), samples: got.latencyUs.samples },
    publishRequestMs: run.requestUs ? { p50: ms(run.requestUs.p50), p99: ms(run.requestUs.p99) } : undefined,
    connectSeconds: server.connectSeconds,
    stats,
    notes,
  };
}

/** Every figure of a variant's rounds, as the median across them, metric by metric. */
const MEDIANS = {
  same: ['clients', 'publish', 'events', 'rate'],
  of: [
    'deliveries',
    'deliveredPct',
    'deliveriesPerSec',
    'cpuUsPerDelivery',
    'userUsPerDelivery',
    'deliveriesPerWrite',
    'cpuUsPerWrite',
    'clientCpuUs',
    'latencyMs.p50',
    'latencyMs.p99',
    'publishRequestMs.p50',
    'publishRequestMs.p99',
  ],
};

/** The table (a column per variant, the ratios against the native hub), then the target, row by row. */
export function renderMercureTable(results) {
  const variants = MERCURE_VARIANTS.filter((v) => results.some((r) => r.variant === v));
  const pairs = variants.filter((v) => v !== 'hub').map((v) => [v, 'hub']);
  const rounds = [...new Set(results.map((r) => r.scenario))].map((scenario) => `${results.find((r) => r.scenario === scenario && r.rounds)?.rounds.length ?? 0} for ${scenario}`);
  const lines = [renderTable(results, variants, pairs), ''];
  lines.push(
    `Each figure is the median of its rounds (${rounds.join(', ')}), after a warm-up; the ratio columns divide those medians. ` +
      'Mercure: half the clients on the exact topic, half on the URI template; the hub: every client on one topic; every server up at once, the rounds alternating. ' +
      'At a given number of events per socket write the CPU per write is what sets the CPU per delivery; flat out, how many events a write carries depends on how fast the publishing loop turns.',
    `Target (issue 11): Mercure's server CPU per delivery within ${TARGET}× the native hub's, with in-process publishing (the fan-out alone), ` +
      'judged on the median of the per-round ratios (each against the hub in the same round):',
  );
  for (const scenario of [...new Set(results.map((r) => r.scenario))]) {
    for (const variant of MERCURE_VARIANTS.filter((v) => v !== 'hub')) {
      const r = results.find((x) => x.scenario === scenario && x.variant === variant);
      if (r === undefined) continue;
      if (!Number.isFinite(r.ratio)) {
        lines.push(`- ${scenario} / ${variant}: no ratio (${r.error ?? 'a run failed'})`);
        continue;
      }
      const verdict = variant === 'mercure' ? (r.ratio <= TARGET ? 'MET' : 'MISSED') : 'for reference, not the target';
      const each = r.ratioByRound.map((x) => (x === null ? '—' : `${x.toFixed(2)}×`)).join(', ');
      lines.push(`- ${scenario} / ${variant}: ${r.ratio.toFixed(2)}× (rounds: ${each}): ${verdict}`);
    }
  }
  return lines.join('\n');
}
