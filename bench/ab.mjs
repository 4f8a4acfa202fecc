// Two servers measured at the same moment: `node bench/ab.mjs <churn|paced> <a.mjs> <b.mjs> [flags]`.
//
// Sequential runs of one server after the other see a machine whose speed drifts (up to 2× over
// minutes here); a small difference between two builds, or between the hub and a baseline, is lost
// in it. This starts both servers (any bench/servers/*.mjs, or a copy of one importing another
// build's dist/) with a load client each, pins the servers to one core and the clients to the other
// (Linux `taskset`, where it exists), and runs the same load against both at once, round after
// round: each round's ratio a ÷ b is taken on the same machine at the same moment.
//
//   churn   connect, wait for the head, disconnect (50 in flight between both): server CPU per cycle
//   paced   events at a fixed rate to connected clients: server CPU per delivery
//
//   --rounds=N   (default 4; the first is a warm-up worth reading, not counting)
//   --cycles=N   churn cycles per round (default 5,000)
//   --clients=N --events=N --rate=N   paced (default 1,000 clients, 250 events at 50/s)
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Child, killAll, runMain } from './lib/child.mjs';

const PATH = '/events?topic=bench';

function parse(argv) {
  const [scenario, a, b, ...rest] = argv;
  if ((scenario !== 'churn' && scenario !== 'paced') || a === undefined || b === undefined) {
    throw new Error('usage: node bench/ab.mjs <churn|paced> <server a.mjs> <server b.mjs> [--rounds=N] [--cycles=N] [--clients=N --events=N --rate=N]');
  }
  const flags = { rounds: 4, cycles: 5_000, clients: 1_000, events: 250, rate: 50 };
  for (const arg of rest) {
    const match = /^--(rounds|cycles|clients|events|rate)=(\d+)$/.exec(arg);
    if (match === null) throw new Error(`unknown flag ${arg}`);
    flags[match[1]] = Number(match[2]);
  }
  return { scenario, files: [resolve(a), resolve(b)], ...flags };
}

/** Pins `pid` to one core, where taskset exists; the figures hold without it, only noisier. */
function pin(pid, core) {
  try {
    execFileSync('taskset', ['-cp', String(core), String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function start(file) {
  const server = new Child(file, `server ${file}`);
  const ready = await server.waitFor('ready', 10_000);
  if (!ready) throw new Error(`${file} did not start${server.stderrTail()}`);
  const client = new Child(new URL('./client.mjs', import.meta.url).pathname, 'client');
  if (!(await client.waitFor('ready', 10_000))) throw new Error('a load client did not start');
  const pinned = pin(server.proc.pid, 1) && pin(client.proc.pid, 0);
  return { server, client, port: ready.port, pinned };
}

async function churnRound({ server, client, port }, cycles) {
  await server.request('cpuStart');
  const result = await client.request('churn', { port, path: PATH, concurrency: 25, count: cycles, timeoutMs: 90_000 }, 95_000);
  await new Promise((done) => setTimeout(done, 200)); // the server's close handling, counted
  const cpu = await server.request('cpu');
  return { perUnit: cpu.totalUs / result.ok, user: cpu.userUs / result.ok, failed: result.failed };
}

async function connect({ server, client, port }, clients) {
  const conn = await client.request('connect', { port, path: PATH, count: clients }, 95_000);
  for (let i = 0; i < 100 && (await server.request('connections')).count < conn.connected; i++) await new Promise((done) => setTimeout(done, 100));
  return conn.connected;
}

async function pacedRound(side, { events, rate }) {
  await side.client.request('expect', { deliveries: side.connected * events });
  const complete = side.client.waitFor('complete', 90_000);
  await side.server.request('run', { events, size: 64, intervalMs: 1000 / rate }, 90_000);
  await complete;
  const cpu = await side.server.request('cpu');
  const got = await side.client.request('report');
  return { perUnit: cpu.totalUs / got.deliveries, user: cpu.userUs / got.deliveries, failed: side.connected * events - got.deliveries };
}

runMain(async () => {
  const options = parse(process.argv.slice(2));
  const sides = [];
  try {
    for (const file of options.files) sides.push(await start(file));
    if (options.scenario === 'paced') for (const side of sides) side.connected = await connect(side, options.clients);
    const unit = options.scenario === 'churn' ? 'cycle' : 'delivery';
    console.log(`${options.scenario}: a = ${options.files[0]}\n${' '.repeat(options.scenario.length)}  b = ${options.files[1]}${sides.every((s) => s.pinned) ? '' : ' (not pinned: no taskset)'}`);
    const ratios = [];
    for (let round = 1; round <= options.rounds; round++) {
      const [a, b] = await Promise.all(sides.map((side) => (options.scenario === 'churn' ? churnRound(side, options.cycles) : pacedRound(side, options))));
      const ratio = a.perUnit / b.perUnit;
      if (round > 1) ratios.push(ratio);
      const fmt = (x) => `${x.perUnit.toFixed(2)} µs/${unit} (user ${x.user.toFixed(2)})${x.failed ? `, ${x.failed} failed` : ''}`;
      console.log(`round ${round}${round === 1 ? ' (warm-up)' : ''}: a ${fmt(a)} | b ${fmt(b)} | a ÷ b ${ratio.toFixed(3)}`);
    }
    if (ratios.length > 0) console.log(`a ÷ b, rounds after the warm-up: ${ratios.map((r) => r.toFixed(3)).join(', ')}`);
  } finally {
    killAll();
  }
});
