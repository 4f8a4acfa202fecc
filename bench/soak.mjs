// Connect/disconnect soak of the hub: `npm run soak [-- --cycles N] [-- --minutes M]`.
//
// The claim it checks: a million connect/disconnect cycles leave the server's heap and handles
// flat. A hub server (serve-sse from dist/, `hub.handler()` with its defaults, so the shared
// keep-alive timer is in play too) runs in one child process with --expose-gc; a load client in
// another opens connections (`GET /events?topic=soak`), waits for the response head and
// destroys the socket, with a bounded number in flight. Every `--every` cycles the client
// pauses, the server drains to zero connections, and the server reports its heap after a full
// GC, its active resources by type (`process.getActiveResourcesInfo()`), `hub.stats().connections`
// and its open sockets. Verdict: FLAT if the heap grew by less than 2 MiB from the sample after
// warm-up to the last one and every resource count is back to the post-warm-up baseline.
// Exit code 0 for FLAT, 1 otherwise. (The baseline is after warm-up because some things appear
// once and stay: JIT code, caches, and handles Node opens lazily; the first socket destroy, for
// one, touches `process.stderr`, which opens its pipe.)
//
// The same file is the server (`soak.mjs server`) and the client (`soak.mjs client`); the
// runner forks it with that argument.
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answerRequests, Child, killAll, runMain } from './lib/child.mjs';
import { SseResponseParser } from './lib/sse-parser.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const DIST = join(here, '..', 'dist', 'esm', 'index.js');
const PATH = '/events?topic=soak';
const MAX_HEAP_GROWTH_MiB = 2;
const MiB = 2 ** 20;

const TIMEOUT = {
  ready: 10_000, // a process to start
  cycle: 10_000, // one connection to get its response head
  drain: 15_000, // the server to see every client of a batch gone
  sample: 30_000, // GC and counting
};

// ---------------------------------------------------------------------------------------------
// Server process: the hub, and answers to the runner's questions.

async function serverRole() {
  const { createHub } = await import(DIST);
  const hub = createHub();
  const server = createServer(hub.handler());
  // A client that vanishes mid-request must not take the server down.
  server.on('clientError', (err, socket) => socket.destroy());

  const openSockets = () => new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

  answerRequests({
    // Cheap, polled while draining: no GC.
    connections: async () => ({ hub: hub.stats().connections, sockets: await openSockets() }),
    sample: async () => {
      // Twice: the first pass can leave work for finalizers.
      global.gc();
      global.gc();
      const { heapUsed, external, rss } = process.memoryUsage();
      const resources = {};
      for (const type of process.getActiveResourcesInfo()) resources[type] = (resources[type] ?? 0) + 1;
      return { heapUsed, external, rss, resources, hubConnections: hub.stats().connections, sockets: await openSockets() };
    },
  });
  server.listen(0, '127.0.0.1', () => process.send({ type: 'ready', port: server.address().port }));
}

// ---------------------------------------------------------------------------------------------
// Client process: connect, wait for the head, destroy; `concurrency` at a time.

function clientRole() {
  answerRequests({ cycles: (msg) => runCycles(msg) });
  process.send({ type: 'ready' });
}

/**
 * `count` cycles, at most `concurrency` in flight, stopping early at `deadline` (epoch ms).
 * With `sources` > 0, connections bind to 127.0.0.2 … 127.0.0.(sources+1) in turn, so that
 * ports in TIME_WAIT on one source address do not run the ephemeral range out.
 */
async function runCycles({ port, count, concurrency, deadline, sources, first }) {
  const started = performance.now();
  const outcomes = {}; // 'ok' or why a cycle failed -> count
  let next = 0;
  async function worker() {
    while (next < count && Date.now() < deadline) {
      const n = first + next++;
      const localAddress = sources > 0 ? `127.0.0.${2 + (n % sources)}` : undefined;
      const outcome = await cycle(port, localAddress);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { attempted: next, outcomes, ms: performance.now() - started };
}

const REQUEST = (port) =>
  `GET ${PATH} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n`;

/** One connection: resolves 'ok' once a 200 head arrived (and the socket is destroyed), else why not. */
function cycle(port, localAddress) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const timer = setTimeout(() => finish('timeout'), TIMEOUT.cycle);
    const parser = new SseResponseParser({ onHead: (ok) => finish(ok ? 'ok' : 'not a 200') });
    socket.on('connect', () => socket.write(REQUEST(port)));
    socket.on('data', (buf) => parser.onData(buf));
    socket.on('error', (err) => finish(err.code ?? 'error'));
    socket.on('close', () => finish('closed before the head'));
  });
}


// ---------------------------------------------------------------------------------------------
// Runner.

function parseFlags(argv) {
  const flags = { cycles: 1_000_000, minutes: 30, concurrency: 64, every: 50_000, warmup: 10_000, sources: 0 };
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].split('=', 2);
    const key = name.replace(/^--/, '');
    if (!name.startsWith('--') || !(key in flags)) {
      throw new Error(`unknown flag ${argv[i]} (have ${Object.keys(flags).map((k) => `--${k}`).join(', ')})`);
    }
    const value = Number(inline ?? argv[++i]);
    if (!(value >= 0) || !Number.isFinite(value)) throw new Error(`${name} needs a non-negative number`);
    flags[key] = value;
  }
  if (flags.concurrency < 1 || flags.every < 1) throw new Error('--concurrency and --every must be at least 1');
  if (flags.sources > 253) throw new Error('--sources: at most 253 (127.0.0.2 … 127.0.0.254)');
  // The baseline is taken after warm-up, before the first regular sample.
  flags.warmup = Math.min(flags.warmup, Math.floor(flags.cycles / 10), flags.every - 1);
  return flags;
}

/** Cycle counts at which to sample: after warm-up, every `every`, and at the end. */
function samplePoints({ cycles, every, warmup }) {
  const points = new Set();
  if (warmup > 0) points.add(warmup);
  for (let n = every; n < cycles; n += every) points.add(n);
  points.add(cycles);
  return [...points].sort((a, b) => a - b);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the server holds no connection (bounded); returns what it still holds. */
async function drain(server) {
  const deadline = Date.now() + TIMEOUT.drain;
  let held;
  do {
    held = await server.request('connections');
    if (held.hub === 0 && held.sockets === 0) break;
    await sleep(20);
  } while (Date.now() < deadline);
  return held;
}

const mib = (bytes) => (bytes / MiB).toFixed(2);
const int = (n) => Math.round(n).toLocaleString('en-US');
const resourceText = (resources) =>
  Object.entries(resources)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, n]) => `${type} ${n}`)
    .join(', ');

function renderTable(rows, baseline) {
  const lines = [
    '| cycles | elapsed s | cycles/s | heap MiB | Δ heap MiB | RSS MiB | hub connections | open sockets | active resources |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const r of rows) {
    const delta = baseline && r.cycles >= baseline.cycles ? mib(r.heapUsed - baseline.heapUsed) : '';
    lines.push(
      `| ${int(r.cycles)}${r === baseline ? ' (baseline)' : ''} | ${r.elapsedS.toFixed(1)} | ${r.rate ? int(r.rate) : ''} | ` +
        `${mib(r.heapUsed)} | ${delta} | ${mib(r.rss)} | ${r.hubConnections} | ${r.sockets} | ${resourceText(r.resources)} |`,
    );
  }
  return lines.join('\n');
}

/** FLAT, GROWING or INCONCLUSIVE, with the reasons. */
function verdict(rows, baseline, totals, flags) {
  const last = rows[rows.length - 1];
  if (!baseline || last === baseline) return { verdict: 'INCONCLUSIVE', reasons: ['no sample after the baseline'] };
  const reasons = [];
  const growth = (last.heapUsed - baseline.heapUsed) / MiB;
  const flat = [];
  if (growth >= MAX_HEAP_GROWTH_MiB) reasons.push(`heap grew ${growth.toFixed(2)} MiB (limit ${MAX_HEAP_GROWTH_MiB})`);
  else flat.push(`heap ${growth >= 0 ? '+' : ''}${growth.toFixed(2)} MiB over ${int(last.cycles - baseline.cycles)} cycles`);
  for (const type of new Set([...Object.keys(baseline.resources), ...Object.keys(last.resources)])) {
    const before = baseline.resources[type] ?? 0;
    const after = last.resources[type] ?? 0;
    if (after > before) reasons.push(`${type}: ${after} active, baseline ${before}`);
  }
  if (last.hubConnections !== 0) reasons.push(`hub.stats().connections is ${last.hubConnections}`);
  if (last.sockets !== 0) reasons.push(`${last.sockets} sockets still open`);
  if (reasons.length) return { verdict: 'GROWING', reasons };
  flat.push('resources back to baseline', 'no connection left');
  // A soak whose connections mostly failed would look flat while testing nothing.
  const failed = totals.attempted - (totals.outcomes.ok ?? 0);
  if (failed > totals.attempted * 0.01) {
    return { verdict: 'INCONCLUSIVE', reasons: [`${int(failed)} of ${int(totals.attempted)} cycles failed`] };
  }
  if (last.cycles < flags.cycles) flat.push(`stopped at the time limit, ${int(last.cycles)} of ${int(flags.cycles)} cycles`);
  return { verdict: 'FLAT', reasons: flat };
}

async function start(role) {
  const child = new Child(fileURLToPath(import.meta.url), `soak ${role}`, [role]);
  const ready = await child.waitFor('ready', TIMEOUT.ready);
  if (!ready) throw new Error(`the soak ${role} did not start${child.stderrTail()}`);
  return { child, port: ready.port };
}

async function main() {
  const flags = parseFlags(process.argv.slice(2));
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: build the package first (npm run build)`);
  const started = Date.now();
  const deadline = started + flags.minutes * 60_000;
  const { child: server, port } = await start('server');
  const { child: client } = await start('client');

  const rows = [];
  const totals = { attempted: 0, outcomes: {} };
  let baseline;
  const sample = async (cycles, rate) => {
    await drain(server); // the sample itself says whether anything was left
    const s = await server.request('sample', {}, TIMEOUT.sample);
    const row = { cycles, elapsedS: (Date.now() - started) / 1000, rate, ...s };
    rows.push(row);
    process.stderr.write(
      `  ${int(cycles)} cycles, ${row.elapsedS.toFixed(0)} s${rate ? `, ${int(rate)}/s` : ''}: heap ${mib(s.heapUsed)} MiB, ` +
        `hub ${s.hubConnections}, sockets ${s.sockets}, ${resourceText(s.resources)}\n`,
    );
    return row;
  };

  process.stderr.write(
    `soak: ${int(flags.cycles)} cycles (or ${flags.minutes} min), ${flags.concurrency} in flight, ` +
      `sample every ${int(flags.every)} after a ${int(flags.warmup)}-cycle warm-up\n`,
  );
  await sample(0);
  let done = 0;
  for (const point of samplePoints(flags)) {
    if (Date.now() >= deadline) break;
    const wanted = point - done;
    const batch = await client.request(
      'cycles',
      { port, count: wanted, concurrency: flags.concurrency, deadline, sources: flags.sources, first: done },
      deadline - Date.now() + TIMEOUT.cycle + 5_000,
    );
    done += batch.attempted;
    totals.attempted += batch.attempted;
    for (const [outcome, n] of Object.entries(batch.outcomes)) totals.outcomes[outcome] = (totals.outcomes[outcome] ?? 0) + n;
    const row = await sample(done, batch.attempted / (batch.ms / 1000));
    if (point === flags.warmup) baseline = row;
    if (batch.attempted < wanted) break; // the time limit
  }
  await Promise.all([client.stop(), server.stop()]);

  const seconds = (Date.now() - started) / 1000;
  const result = verdict(rows, baseline, totals, flags);
  const failures = Object.entries(totals.outcomes).filter(([outcome]) => outcome !== 'ok');
  console.log(`\n${renderTable(rows, baseline)}\n`);
  console.log(
    `${int(totals.attempted)} cycles in ${seconds.toFixed(0)} s (${int(totals.attempted / seconds)}/s overall), ` +
      `${int(totals.outcomes.ok ?? 0)} ok` +
      (failures.length ? `; failed: ${failures.map(([o, n]) => `${o} ${int(n)}`).join(', ')}` : '') +
      (totals.outcomes.EADDRNOTAVAIL ? ' (out of ephemeral ports: try --sources 200)' : ''),
  );
  console.log(`Verdict: ${result.verdict} (${result.reasons.join('; ')})`);
  process.exitCode = result.verdict === 'FLAT' ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------

const role = process.argv[2];
if (role === 'server') await serverRole();
else if (role === 'client') clientRole();
else {
  runMain(main);
}
