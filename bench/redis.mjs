// The redis section of the benchmark (`node bench/run.mjs --only=redis`): hub instances in
// separate processes sharing one Redis stream (REDIS_URL, default redis://127.0.0.1:6379).
// Events are published on instance A and counted by the raw-socket load client on instance B
// (A→B: what a cluster adds), on A itself (A→A: the round trip through Redis alone), and, for
// reference, on a single-process hub without Redis (memory). Reports publish-to-receive latency
// (p50/p99; the publish time is stamped before `hub.publish`, on the monotonic clock every
// process shares) and throughput. Each variant gets its own stream key, deleted at the end. Per
// scenario, every variant's processes are up at once; after a warm-up each, the variants take
// turns over rounds whose order rotates, and each figure is the median of a variant's rounds. The
// section stays under two minutes, and is skipped with the reason when Redis does not answer.
// With BENCH_PROFILE_DIR=<dir>, the publishing and the reading instance are CPU-profiled from the
// first publish to the last delivery (servers/harness.mjs, `profileStart`):
// <dir>/redis.<scenario>.<variant>.r<round>.<publisher|reader>.cpuprofile. The profiler costs CPU:
// figures from such a run are not the bench's.
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startChild } from './lib/child.mjs';
import { medians } from './lib/stats.mjs';

export const SECTION = 'redis';

const here = dirname(fileURLToPath(import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PATH = '/events?topic=bench';
const PAYLOAD = 64;
const SECTION_BUDGET = 120_000;
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;
const TIMEOUT = { ready: 10_000, connect: 15_000, subscribed: 10_000, delivery: 20_000 };

/** Where each variant publishes and reads: indexes into its `servers`. */
const VARIANTS = [
  { name: 'memory, 1 process', servers: ['hub.mjs'], publishOn: 0, readOn: 0 },
  { name: 'redis A→A', servers: ['hub-redis.mjs'], publishOn: 0, readOn: 0 },
  { name: 'redis A→B', servers: ['hub-redis.mjs', 'hub-redis.mjs'], publishOn: 0, readOn: 1 },
];

/**
 * Paced: a rate every variant keeps up with, so latency is not queueing. Flat out: one publish per
 * event-loop turn, either each awaited before the next (through Redis, each waits for its XADD's
 * round trip) or up to 16 awaiting Redis at once, as concurrent requests would publish.
 */
export function redisPlan({ quick }) {
  const clients = 100;
  const paced = quick ? 200 : 600;
  const flat = quick ? 1000 : 5000;
  // Flat out, a round lasts under a second, and the machine's speed moves between rounds: more of them.
  const rounds = { paced: quick ? 1 : 3, flat: quick ? 1 : 5 };
  return {
    clients,
    warmUpEvents: quick ? 5_000 : 20_000,
    scenarios: [
      { name: `paced ${clients}×${paced} @200/s`, events: paced, intervalMs: 5, inFlight: 1, rounds: rounds.paced },
      { name: `flat out ${clients}×${flat}, 1 in flight`, events: flat, intervalMs: 0, inFlight: 1, rounds: rounds.flat },
      { name: `flat out ${clients}×${flat * 2}, 16 in flight`, events: flat * 2, intervalMs: 0, inFlight: 16, rounds: rounds.flat },
    ],
  };
}

/** Why Redis cannot be used, or undefined when it answers (also for the reconnect storm, bench/reconnect.mjs). */
export async function unreachable(url) {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 2000, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  // The connection's own error says more than the "Connection is closed" that connect() rejects with.
  let cause = '';
  redis.on('error', (err) => (cause ||= err.message));
  try {
    await redis.connect();
    await redis.ping();
    return undefined;
  } catch (err) {
    return `no Redis at REDIS_URL=${url} (${cause || err.message})`;
  } finally {
    redis.disconnect();
  }
}

export async function deleteKeys(keys) {
  if (keys.length === 0) return;
  const redis = new Redis(REDIS_URL, { connectTimeout: 2000, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  redis.on('error', () => {});
  try {
    await redis.del(...keys);
  } catch (err) {
    process.stderr.write(`${SECTION}: could not delete the stream keys ${keys.join(', ')}: ${err.message}\n`);
  } finally {
    redis.disconnect();
  }
}

const start = (file, label, args, within) => startChild(join(here, file), label, args, within(TIMEOUT.ready));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @returns {{ skipped?: string, results: object[] }} */
export async function runRedisSection(flags) {
  const skipped = await unreachable(REDIS_URL);
  if (skipped !== undefined) {
    process.stderr.write(`${SECTION}: skipped: ${skipped}\n`);
    return { skipped, results: [] };
  }
  const plan = redisPlan(flags);
  // --scenario=<part of a name> picks scenarios, as in the other sections.
  const scenarios = plan.scenarios.filter((s) => flags.scenario === undefined || s.name.includes(flags.scenario));
  const deadline = Date.now() + SECTION_BUDGET;
  const within = (ms) => Math.max(1, Math.min(ms, deadline - Date.now()));
  const keys = [];
  const results = [];
  try {
    // Fresh processes for every scenario, every variant's up at once: the variants take turns
    // in rounds whose order rotates, so that each sees the same machine (whose speed drifts).
    for (const scenario of scenarios) {
      const started = performance.now();
      const procs = [];
      const contexts = new Map();
      const runs = new Map(VARIANTS.map((variant) => [variant, []]));
      const failed = new Map();
      try {
        if (Date.now() >= deadline) throw new Error(`skipped: the section's ${SECTION_BUDGET / 1000} s budget is spent`);
        await Promise.all(
          VARIANTS.map(async (variant) => {
            const key = `serve-sse-bench:${randomUUID()}`;
            keys.push(key);
            const args = [REDIS_URL, key, String(scenario.inFlight)];
            const servers = await Promise.all(variant.servers.map((file, i) => start(join('servers', file), `${variant.name} ${'AB'[i]}`, args, within)));
            procs.push(...servers);
            const client = await start('client.mjs', `${variant.name} client`, [], within);
            procs.push(client);
            contexts.set(variant, { publisher: servers[variant.publishOn], reader: servers[variant.readOn], client, within, notes: [] });
          }),
        );
        for (const [variant, context] of contexts) {
          try {
            context.connected = await connect(context, plan.clients, context.notes);
            await warmUp(context, plan.warmUpEvents);
          } catch (err) {
            failed.set(variant, String(err?.message ?? err));
          }
        }
        for (let round = 0; round < scenario.rounds; round++) {
          for (let i = 0; i < VARIANTS.length; i++) {
            const variant = VARIANTS[(i + round) % VARIANTS.length];
            if (failed.has(variant)) continue;
            const profile = PROFILE_DIR ? join(PROFILE_DIR, `redis.${scenario.name.replace(/\W+/g, '-')}.${variant.name.replace(/\W+/g, '-')}.r${round + 1}`) : undefined;
            try {
              runs.get(variant).push(await measure(contexts.get(variant), scenario, profile));
            } catch (err) {
              failed.set(variant, `round ${round + 1}: ${String(err?.message ?? err)}`);
            }
          }
        }
      } catch (err) {
        for (const variant of VARIANTS) if (!failed.has(variant)) failed.set(variant, String(err?.message ?? err));
      } finally {
        await Promise.all(procs.map((child) => child.stop()));
        process.stderr.write(`  ${scenario.name}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
      }
      for (const [variant, list] of runs) {
        const notes = [...(contexts.get(variant)?.notes ?? []), ...list.flatMap((r, round) => r.notes.map((note) => `round ${round + 1}: ${note}`))];
        if (list.length === 0) results.push({ scenario: scenario.name, variant: variant.name, error: failed.get(variant) ?? 'no round ran', notes });
        else results.push({ scenario: scenario.name, variant: variant.name, ...medians(list, MEDIANS), rounds: list, notes: failed.has(variant) ? [...notes, failed.get(variant)] : notes });
      }
    }
  } finally {
    await deleteKeys(keys);
  }
  return { results };
}

/** What every round of a variant has alike, and the figures whose median across rounds it reports. */
const MEDIANS = {
  same: ['clients', 'events'],
  of: [
    'deliveries',
    'deliveredPct',
    'eventsPerSec',
    'deliveriesPerSec',
    'publishSeconds',
    'latencyMs.p50',
    'latencyMs.p99',
    'latencyMs.max',
    'cpuUsPerEvent.publisher',
    'cpuUsPerEvent.reader',
    'cpuUsPerEvent.redis',
    'cpuSplitUsPerEvent.publisher.user',
    'cpuSplitUsPerEvent.publisher.system',
    'cpuSplitUsPerEvent.reader.user',
    'cpuSplitUsPerEvent.reader.system',
  ],
};

async function connect({ reader, client, within }, count, notes) {
  const connectMs = within(TIMEOUT.connect);
  const conn = await client.request('connect', { port: reader.port, path: PATH, count, timeoutMs: connectMs }, connectMs + 5_000);
  if (conn.failed) notes.push(`${conn.failed} of ${count} clients failed to connect`);
  const countedBy = Date.now() + within(TIMEOUT.subscribed);
  let counted = 0;
  while ((counted = (await reader.request('connections')).count) < conn.connected && Date.now() < countedBy) await sleep(50);
  if (counted < conn.connected) notes.push(`the reading instance counts ${counted} of ${conn.connected} clients`);
  return conn.connected;
}

/**
 * Events published flat out, not measured, before each scenario's rounds (`warmUpEvents`): the
 * first ten to fifteen thousand events a process publishes through Redis cost it two to three
 * times what later ones do (the compiler's work on the Redis client's encoder and parser and the
 * append queue, counted in the process's CPU; the memory hub warms up in fewer). A long-running
 * instance is past that, so each variant gets the same warm-up, and the figures are the path's,
 * not the compiler's. It is a measured run whose figures are dropped.
 */
async function warmUp(context, events) {
  const { notes } = await measure(context, { events, intervalMs: 0 }, undefined);
  if (notes.length > 0) throw new Error(`warm-up: ${notes.join('; ')}`);
}

async function measure({ publisher, reader, client, connected, within }, { events, intervalMs }, profile) {
  const notes = [];
  const profiled = profile === undefined ? [] : reader === publisher ? [['publisher', publisher]] : [['publisher', publisher], ['reader', reader]];
  for (const [, server] of profiled) await server.request('profileStart');
  await client.request('expect', { deliveries: connected * events });
  const complete = client.waitFor('complete', within(TIMEOUT.delivery));
  // CPU of each process from the first publish to the last delivery: where a cluster's cost goes.
  if (reader !== publisher) await reader.request('cpuStart');
  const redisBefore = await redisCpuUs();
  const run = await publisher.request('run', { events, size: PAYLOAD, intervalMs }, within(TIMEOUT.delivery) + 5_000);
  if (!(await complete)) notes.push('timed out waiting for every delivery');
  const redisUs = (await redisCpuUs()) - redisBefore;
  for (const [role, server] of profiled) await server.request('profileStop', { file: `${profile}.${role}.cpuprofile` });
  const publisherCpu = await publisher.request('cpu');
  const readerCpu = reader === publisher ? publisherCpu : await reader.request('cpu');
  const got = await client.request('report');
  const stats = await reader.request('stats');
  if (stats?.evicted) notes.push(`the reading instance evicted ${stats.evicted} slow clients`);
  const seconds = (got.lastRecvUs - run.firstUs) / 1e6;
  const ms = (us) => (us == null ? null : us / 1000);
  return {
    clients: connected,
    events,
    deliveries: got.deliveries,
    deliveredPct: (100 * got.deliveries) / (connected * events),
    eventsPerSec: got.deliveries / connected / seconds,
    deliveriesPerSec: got.deliveries / seconds,
    publishSeconds: (run.lastUs - run.firstUs) / 1e6,
    latencyMs: { p50: ms(got.latencyUs.p50), p99: ms(got.latencyUs.p99), max: ms(got.latencyUs.max), samples: got.latencyUs.samples },
    clientCpuUs: got.cpuUs,
    // µs of CPU per event published: the publishing instance, the reading one (the same process
    // in A→A and memory), and redis-server (INFO cpu; null if it would not say).
    cpuUsPerEvent: {
      publisher: publisherCpu.totalUs / events,
      reader: reader === publisher ? null : readerCpu.totalUs / events,
      redis: Number.isFinite(redisUs) ? redisUs / events : null,
    },
    // The same split into user and system (kernel) time: on loopback, the kernel's TCP is much of it.
    cpuSplitUsPerEvent: {
      publisher: { user: publisherCpu.userUs / events, system: publisherCpu.systemUs / events },
      reader: reader === publisher ? null : { user: readerCpu.userUs / events, system: readerCpu.systemUs / events },
    },
    stats,
    notes,
  };
}

/** redis-server's own CPU so far (user + system, µs), from INFO cpu; NaN if it cannot be read. */
async function redisCpuUs() {
  const redis = new Redis(REDIS_URL, { connectTimeout: 2000, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  redis.on('error', () => {});
  try {
    const info = await redis.info('cpu');
    const field = (name) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1]);
    return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
  } catch {
    return NaN;
  } finally {
    redis.disconnect();
  }
}

const int = (v) => Math.round(v).toLocaleString('en-US');
const fixed = (digits) => (v) => v.toFixed(digits);
const METRICS = [
  { name: 'events/s ↑', get: (r) => r.eventsPerSec, format: int },
  { name: 'deliveries/s ↑', get: (r) => r.deliveriesPerSec, format: int },
  { name: 'publish-to-receive p50 ms ↓', get: (r) => r.latencyMs?.p50, format: fixed(2) },
  { name: 'publish-to-receive p99 ms ↓', get: (r) => r.latencyMs?.p99, format: fixed(2) },
  { name: 'delivered % ↑', get: (r) => r.deliveredPct, format: fixed(1) },
  { name: 'CPU µs/event: publisher + reader + redis ↓', get: (r) => cpuPerEvent(r), format: fixed(1) },
];

/** The machine's CPU per event across the processes that carry it (the memory hub: one process). */
function cpuPerEvent(r) {
  const cpu = r.cpuUsPerEvent;
  if (cpu === undefined) return undefined;
  return cpu.publisher + (cpu.reader ?? 0) + (r.variant.startsWith('redis') ? (cpu.redis ?? NaN) : 0);
}

/** One markdown table: a row per scenario and metric, a column per variant. */
export function renderRedisTable({ skipped, results }) {
  if (skipped !== undefined) return `Redis section skipped: ${skipped}`;
  const variants = VARIANTS.map((v) => v.name);
  const lines = [`| redis | metric | ${variants.join(' | ')} |`, `| --- | --- |${' --- |'.repeat(variants.length)}`];
  for (const scenario of [...new Set(results.map((r) => r.scenario))]) {
    const of = (variant) => results.find((r) => r.scenario === scenario && r.variant === variant);
    for (const metric of METRICS) {
      const cells = variants.map((variant) => {
        const r = of(variant);
        if (r === undefined) return '—';
        if (r.error) return 'error';
        const value = metric.get(r);
        return Number.isFinite(value) ? metric.format(value) : '—';
      });
      lines.push(`| ${scenario} | ${metric.name} | ${cells.join(' | ')} |`);
    }
  }
  return [lines.join('\n'), ...roundRatios(results)].join('\n\n');
}

/** Per scenario, events/s of the cluster (A→B) over the memory hub's, round by round (the same round: the same machine). */
function roundRatios(results) {
  const out = [];
  for (const scenario of [...new Set(results.map((r) => r.scenario))]) {
    const of = (variant) => results.find((r) => r.scenario === scenario && r.variant === variant)?.rounds ?? [];
    const memory = of(VARIANTS[0].name);
    const cluster = of(VARIANTS[2].name);
    const ratios = cluster.map((r, round) => r.eventsPerSec / memory[round]?.eventsPerSec).filter(Number.isFinite);
    if (ratios.length > 0) out.push(`${scenario}: ${VARIANTS[2].name} ÷ ${VARIANTS[0].name}, events/s per round: ${ratios.map((x) => x.toFixed(2)).join(', ')}.`);
  }
  return out;
}
