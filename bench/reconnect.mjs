// The reconnect storm (issue 14): 10,000 clients are live and have an event; all of them lose
// their connections at once (a network blip, a proxy restart), the server publishes 100 events
// meanwhile (each client is then 100 behind), and they all come back at once, each with
// `Last-Event-ID` the id of the last event it had itself received, and must get the 100 it
// missed, in order, and then the next event live.
// Run by bench/run.mjs as the `reconnect storm` rows (`--scenario=reconnect`), against four
// servers: the in-memory hub (servers/hub.mjs), raw node:http with its own replay buffer
// (servers/raw-replay.mjs), the standalone hub server (`serve-sse hub` from dist/, a subscriber
// JWT per connection) and hub instances on Redis (servers/hub-redis.mjs: A publishes, the clients
// are on B and C and come back to the other one). See bench/README.md, "Reconnect storm".
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { startChild } from './lib/child.mjs';
import { renderTable } from './lib/table.mjs';
import { nowUs } from './servers/harness.mjs';
import { KEY as PUBLISHER_KEY, processCpuUs, scrape, startHub, stopProcess } from './hub-server.mjs';
import { deleteKeys, unreachable } from './redis.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SUBSCRIBER_KEY = 'bench-subscriber-key-0123456789abcdef';
const TOPIC = 'bench';
const PATH = `/events?topic=${TOPIC}`;
const PAYLOAD = 64; // as in the fan-outs
const OWED = 100;
// Waiting for a head, at most: under the listen backlog (511), as in the replay storm.
const CONNECT_WINDOW = 400;
const TIMEOUT = {
  ready: 10_000,
  connect: 60_000, // the clients, live, before the storm
  counted: 15_000, // the server to count them
  prime: 15_000, // every client to have the first event
  publish: 30_000, // the 100 events the clients miss
  heard: 10_000, // Redis: B and C to have heard them
  storm: 90_000, // every client to catch up
  live: 15_000, // every client to get the event after
};

/** The variants, by their `--only` names, and their column names. */
export const RECONNECT_VARIANTS = { hub: 'hub', raw: 'raw', 'hub-server': 'hub server', redis: 'redis A→B,C' };

export function reconnectStorms({ quick }) {
  const clients = quick ? 1_000 : 10_000;
  return [{ kind: 'reconnect', name: `reconnect storm ${clients / 1000}k`, clients, owed: OWED }];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or a rejection naming `what` after `ms`: every wait is bounded. */
function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((resolve, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// The servers. Each target gives the ports the clients use, how to publish (data: the sequence
// number), and a probe: a baseline before the storm, the CPU when every client has caught up, and
// the peak RSS over the storm.

/** A harness child (servers/*.mjs) and its storm probe (servers/harness.mjs, `stormProbe`). */
function harnessProbe(server) {
  return {
    start: () => server.request('stormStart', {}),
    caughtUp: () => server.request('stormCaughtUp'),
    stop: () => server.request('stormStop'),
  };
}

async function harnessTarget(file, label) {
  const server = await startChild(join(here, 'servers', file), `${label} server`, [], TIMEOUT.ready);
  const probe = harnessProbe(server);
  return {
    ports: [server.port],
    publish: (events, seqFrom) => server.request('run', { events, size: PAYLOAD, seqFrom }, TIMEOUT.publish),
    connections: async () => (await server.request('connections')).count,
    stats: () => server.request('stats'),
    probes: [probe],
    stop: () => server.stop(),
  };
}

/** Like the harness's probe, from outside the process: /proc (Linux), sampled every 50 ms. */
function procProbe(pid) {
  const status = () => readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (text, field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  let run;
  const sample = () => {
    const rss = kib(status(), 'VmRSS');
    if (rss > run.peakRss) run.peakRss = rss;
  };
  return {
    start: () => {
      let hwmReset = false;
      try {
        writeFileSync(`/proc/${pid}/clear_refs`, '5');
        hwmReset = true;
      } catch {
        // not Linux, or not allowed: the samples alone
      }
      const rssBefore = kib(status(), 'VmRSS');
      run = { rssBefore, peakRss: rssBefore, hwmReset, cpuAtStart: processCpuUs(pid), timer: setInterval(sample, 50) };
      return { rssBefore };
    },
    caughtUp: () => ({ cpu: { totalUs: processCpuUs(pid) - run.cpuAtStart } }),
    stop: () => {
      clearInterval(run.timer);
      sample();
      const hwm = run.hwmReset ? kib(status(), 'VmHWM') : NaN;
      return { rssBefore: run.rssBefore, peakRssSampled: run.peakRss, peakRssHwm: hwm, peakRss: Math.max(run.peakRss, Number.isFinite(hwm) ? hwm : 0) };
    },
  };
}

function post(agent, port, token, body, timeoutMs) {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/publish', method: 'POST', agent, headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}`, 'Content-Length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

/** `serve-sse hub` as deployed (bench/hub-server.mjs), with a subscriber key: a JWT per connection. */
async function hubServerTarget(clients) {
  const { child, port } = await startHub(TIMEOUT.ready, { env: { SERVE_SSE_SUBSCRIBER_KEY: SUBSCRIBER_KEY } });
  const encode = (key) => new TextEncoder().encode(key);
  const publishToken = await new SignJWT({ sse: { publish: [TOPIC] } }).setProtectedHeader({ alg: 'HS256' }).sign(encode(PUBLISHER_KEY));
  // A token of its own for each client (its `sub`), as each user has: the hub checks each once
  // and keeps it (a bounded cache of 10,000), so the storm's reconnections find theirs there.
  const subscriberKey = encode(SUBSCRIBER_KEY);
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const tokens = [];
  for (let k = 0; k < clients; k++) {
    tokens.push(await new SignJWT({ sub: `client-${k}`, sse: { subscribe: [TOPIC] } }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(subscriberKey));
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    ports: [port],
    tokens,
    // One request at a time, so the events are published in the order of their numbers.
    publish: async (events, seqFrom) => {
      const deadline = Date.now() + TIMEOUT.publish;
      let firstUs = 0;
      let failed = 0;
      for (let n = 0; n < events; n++) {
        if (n === 0) firstUs = nowUs();
        const data = String(seqFrom + n).padEnd(PAYLOAD, '.');
        const status = await post(agent, port, publishToken, JSON.stringify({ topic: TOPIC, event: 'bench', data }), Math.max(1, deadline - Date.now()));
        if (status !== 200) failed++;
      }
      if (failed) throw new Error(`${failed} of ${events} publish requests failed`);
      return { firstUs };
    },
    connections: async () => (await bounded(scrape(port), 5_000, 'GET /metrics')).connections,
    stats: () => bounded(scrape(port), 5_000, 'GET /metrics'),
    probes: [procProbe(child.pid)],
    stop: async () => {
      agent.destroy();
      await stopProcess(child);
    },
  };
}

/** Three hub instances on one Redis stream: A publishes, the clients are on B and C. */
async function redisTarget() {
  const key = `serve-sse-bench:${randomUUID()}`;
  const args = [REDIS_URL, key, '1'];
  const start = (name) => startChild(join(here, 'servers', 'hub-redis.mjs'), `redis ${name}`, args, TIMEOUT.ready);
  const started = await Promise.allSettled(['A', 'B', 'C'].map(start));
  const [a, b, c] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const stop = async () => {
    await Promise.all([a, b, c].map((child) => child?.stop()));
    await deleteKeys([key]);
  };
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const readers = [b, c];
  return {
    ports: readers.map((server) => server.port),
    shift: 1, // a client on B comes back to C, and one on C to B
    publish: (events, seqFrom) => a.request('run', { events, size: PAYLOAD, seqFrom }, TIMEOUT.publish),
    connections: async () => (await Promise.all(readers.map((server) => server.request('connections')))).reduce((sum, { count }) => sum + count, 0),
    stats: async () => Object.fromEntries(await Promise.all(['B', 'C'].map(async (name, i) => [name, await readers[i].request('stats')]))),
    // B and C hear A's events through Redis: the storm starts once both hold them all.
    heard: async (count) => {
      const deadline = Date.now() + TIMEOUT.heard;
      for (;;) {
        const histories = await Promise.all(readers.map(async (server) => (await server.request('stats')).history));
        if (histories.every((h) => h >= count) || Date.now() >= deadline) return histories;
        await sleep(20);
      }
    },
    probes: readers.map(harnessProbe),
    stop,
  };
}

// ---------------------------------------------------------------------------------------------

/**
 * One variant of the storm, on fresh processes, always stopped at the end.
 * @param {{ name: string, clients: number, owed: number }} scenario
 * @param {string} variant  a key of RECONNECT_VARIANTS
 */
export async function runReconnectStorm(scenario, variant) {
  if (variant === 'redis') {
    const why = await unreachable(REDIS_URL);
    if (why !== undefined) return { skipped: why, notes: [] };
  }
  let target;
  let client;
  try {
    target =
      variant === 'hub'
        ? await harnessTarget('hub.mjs', 'hub')
        : variant === 'raw'
          ? await harnessTarget('raw-replay.mjs', 'raw')
          : variant === 'hub-server'
            ? await hubServerTarget(scenario.clients)
            : await redisTarget();
    client = await startChild(join(here, 'client.mjs'), 'client', [], TIMEOUT.ready);
    return await storm(target, client, scenario);
  } finally {
    await Promise.all([client?.stop(), target?.stop()]);
  }
}

async function storm(target, client, { clients, owed }) {
  const notes = [];
  const { ports, tokens, shift = 0 } = target;
  // How long each phase took (s), in the JSON: where a slow run spent its time.
  const phases = {};
  let phaseStart = performance.now();
  const phase = (name) => {
    const t = performance.now();
    phases[name] = (t - phaseStart) / 1000;
    phaseStart = t;
  };

  // 1. The clients, live.
  const conn = await client.request('rsConnect', { ports, path: PATH, count: clients, tokens, timeoutMs: TIMEOUT.connect }, TIMEOUT.connect + 10_000);
  if (conn.failed) notes.push(`${conn.failed} of ${clients} clients failed to connect`);
  const countedBy = Date.now() + TIMEOUT.counted;
  let counted = 0;
  while ((counted = await target.connections()) < conn.connected && Date.now() < countedBy) await sleep(100);
  if (counted < conn.connected) notes.push(`the server counts ${counted} of ${conn.connected} connections`);
  phase('connect');

  // 2. An event every client receives live: the last it has before falling behind.
  await target.publish(1, 1);
  const primed = await client.request('rsWaitFor', { seq: 1, timeoutMs: TIMEOUT.prime }, TIMEOUT.prime + 5_000);
  if (primed.have < primed.of) notes.push(`${primed.of - primed.have} of ${primed.of} clients did not get the first event within ${TIMEOUT.prime / 1000} s`);
  phase('prime');

  // 3. They all leave at once; once the server has seen them go, it publishes the 100 they miss
  // (as during a browser's reconnection delay). What the server spends on the departures is
  // not in the storm's figures.
  await client.request('rsLeave');
  const goneBy = Date.now() + TIMEOUT.counted;
  let left;
  while ((left = await target.connections()) > 0 && Date.now() < goneBy) await sleep(50);
  if (left > 0) notes.push(`the server still counted ${left} connections ${TIMEOUT.counted / 1000} s after every client left`);
  phase('leave');
  await target.publish(owed, 2);
  if (target.heard) {
    const histories = await target.heard(1 + owed);
    if (histories.some((h) => h < 1 + owed)) notes.push(`B and C held ${histories.join(' and ')} of ${1 + owed} events when the storm began`);
  }
  phase('behind');

  // 4. The storm: all leave and come back at once, each with its own last id.
  const baselines = await Promise.all(target.probes.map((probe) => probe.start()));
  const result = await client.request(
    'rsStorm',
    { ports, path: PATH, shift, owed, window: CONNECT_WINDOW, timeoutMs: TIMEOUT.storm },
    TIMEOUT.storm + 10_000,
  );
  const caughtUp = await Promise.all(target.probes.map((probe) => probe.caughtUp()));
  const cpuUs = caughtUp.reduce((sum, c) => sum + c.cpu.totalUs, 0);
  phase('storm');
  if (result.noLastId) notes.push(`${result.noLastId} clients had no id to come back with`);
  if (result.timedOut) notes.push(`timed out after ${TIMEOUT.storm / 1000} s with ${result.caughtUp} of ${result.count} caught up`);
  if (result.noHead) notes.push(`${result.noHead} of ${result.count} clients got no 200 head`);
  if (result.wrongOrder) notes.push(`${result.wrongOrder} clients got an event out of order or not theirs`);
  if (result.short) notes.push(`${result.short} clients got fewer than ${owed} events${result.closedEarly ? ` (${result.closedEarly} closed by the server)` : ''}`);
  if (result.cpuUs > 0.9 * result.ms * 1000) notes.push(`the load client used ${(result.cpuUs / 1000 / result.ms).toFixed(2)} of a core: it may have limited the pace`);

  // 5. Live: the next event, published once every client has caught up, must reach each of them.
  const marker = await target.publish(1, 2 + owed);
  const live = await client.request('rsLive', { owed, timeoutMs: TIMEOUT.live }, TIMEOUT.live + 5_000);
  if (live.live < live.of) notes.push(`${live.of - live.live} of ${live.of} caught-up clients did not get the next event live within ${TIMEOUT.live / 1000} s`);
  if (live.extra) notes.push(`${live.extra} clients got more events than were published`);
  phase('live');
  const stops = await Promise.all(target.probes.map((probe) => probe.stop()));
  const stats = await target.stats();
  await client.request('rsClose');

  const sum = (list, key) => list.reduce((total, x) => total + x[key], 0);
  return {
    clients,
    connected: conn.connected,
    owed,
    caughtUpSeconds: result.caughtUpMs / 1000,
    connectsPerSec: result.heads / (result.connectMs / 1000),
    deliveredPct: (100 * result.caughtUp) / clients,
    livePct: (100 * live.live) / clients,
    liveMs: live.lastLiveUs > 0 ? (live.lastLiveUs - marker.firstUs) / 1000 : undefined,
    replayed: result.received,
    cpuUsPerReplayed: cpuUs / result.received,
    serverCpuUs: cpuUs,
    clientCpuUs: result.cpuUs,
    // Redis: B and C together (each one's peak, added).
    rssBeforeMiB: sum(stops, 'rssBefore') / 2 ** 20,
    peakRssMiB: sum(stops, 'peakRss') / 2 ** 20,
    rssGrowthMiB: (sum(stops, 'peakRss') - sum(stops, 'rssBefore')) / 2 ** 20,
    phases,
    storm: result,
    live,
    baselines,
    probes: stops,
    stats,
    notes,
  };
}

// ---------------------------------------------------------------------------------------------

/**
 * One table (the metrics are lib/table.mjs's `reconnect`): a row per metric, a column per variant,
 * then each against raw and against the in-memory hub.
 */
export function renderReconnectTable(results) {
  const names = Object.keys(RECONNECT_VARIANTS).filter((v) => results.some((r) => r.variant === v));
  const columns = names.map((v) => RECONNECT_VARIANTS[v]);
  const rows = results.map((r) => ({ ...r, variant: RECONNECT_VARIANTS[r.variant] }));
  const pairs = [
    ['hub', 'raw'],
    ['hub server', 'raw'],
    ['redis A→B,C', 'raw'],
    ['hub server', 'hub'],
    ['redis A→B,C', 'hub'],
  ].filter((pair) => pair.every((v) => columns.includes(v)));
  return renderTable(rows, columns, pairs);
}
