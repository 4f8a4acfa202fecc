// What every server variant shares: listen on 127.0.0.1, report the port, and answer the
// runner's commands over IPC. A variant supplies only what differs: its http.Server, how it
// publishes one event, and how many SSE streams it holds.
//
// Publishing is driven here, inside the server process, so the timestamps the client sees are
// taken right before the library call, and the CPU the server spends is measured where it is
// spent.

import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { Session } from 'node:inspector/promises';
import { answerRequests } from '../lib/child.mjs';

/** Microseconds on the monotonic clock (CLOCK_MONOTONIC): the same clock in every process. */
export function nowUs() {
  const [s, ns] = process.hrtime();
  return s * 1e6 + ns / 1e3;
}

/** The event's data: the publish time in µs, padded to `size` bytes so every event weighs the same. */
export function payload(publishedUs, size) {
  return String(Math.round(publishedUs)).padEnd(size, '.');
}

/**
 * @param {object} variant
 * @param {import('node:http').Server} variant.server
 * @param {(n: number, data: string) => unknown} variant.publish  publishes event number n
 * @param {() => number} variant.connections  SSE streams currently subscribed
 * @param {() => object} [variant.stats]  the library's own counters, kept in the JSON results
 * @param {(groups: Array<{ topic: string, count: number, size: number }>) => Promise<string[]>} [variant.seed]
 *   publishes the groups in order, before any client connects (the replay storm's history);
 *   resolves with the ids the events went out with
 */
export function runServer({ server, publish, connections, stats = () => null, seed }) {
  // A client that vanishes mid-request must not take the server down.
  server.on('clientError', (err, socket) => socket.destroy());
  const storm = stormProbe(server, connections, stats);
  const writes = countWrites(process.argv.includes('--count-writes'));

  let cpuAtRunStart = null;
  const commands = {
    connections: () => ({ count: connections() }),
    stats: () => stats(),
    memory: () => memory(),
    run: async ({ events, size, intervalMs = 0, seqFrom }) => {
      cpuAtRunStart = process.cpuUsage();
      return { ...(await publishAll(publish, events, size, intervalMs, seqFrom)), cpu: cpuSince(cpuAtRunStart) };
    },
    // CPU from the start of the run until now: the runner asks once every event has arrived
    // (or the scenario timed out), so writes the server finished after its last publish count.
    cpu: () => cpuSince(cpuAtRunStart ?? process.cpuUsage()),
    // Starts the CPU clock without publishing, for runs whose events come from elsewhere (over
    // HTTP, from a publisher process: the Mercure section's POST variant).
    cpuStart: () => {
      cpuAtRunStart = process.cpuUsage();
      return {};
    },
    seed: async ({ groups }) => {
      if (!seed) throw new Error('this variant keeps no history to replay');
      return { ids: await seed(groups) };
    },
    ...storm,
    ...profiler(),
    writes: () => ({ count: writes() }),
  };

  answerRequests(commands);

  server.listen(0, '127.0.0.1', () => {
    process.send({ type: 'ready', port: server.address().port });
  });
}

/**
 * N events, one per event-loop turn: a synchronous burst would let a library coalesce writes
 * and would measure something no real server does (events arrive from I/O, one at a time).
 * With `intervalMs`, events are paced at that period instead (on a fixed schedule, so timer
 * lateness does not accumulate): a rate every variant can sustain, where a library cannot
 * batch consecutive events and the cost per event shows.
 * With `seqFrom`, each event's data is its sequence number instead of its publish time
 * (`seqFrom`, `seqFrom + 1`, ..., padded to `size`): the reconnect storm's clients check by it
 * that they get every event they are owed, in order.
 */
async function publishAll(publish, events, size, intervalMs, seqFrom) {
  const startMs = performance.now();
  let firstUs = 0;
  for (let n = 1; n <= events; n++) {
    const t = nowUs();
    if (n === 1) firstUs = t;
    await publish(n, seqFrom === undefined ? payload(t, size) : String(seqFrom + n - 1).padEnd(size, '.'));
    const wait = intervalMs > 0 ? startMs + n * intervalMs - performance.now() : 0;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    else await new Promise(setImmediate);
  }
  return { published: events, firstUs, lastUs: nowUs() };
}

/**
 * With `--count-writes` on the server's command line, counts `socket.write` calls (every write the
 * libraries make to a connection goes through it: the hub's own, and `res.write`'s), so that a run
 * can say how many events went out per write. A counter and a call per write, next to a system call
 * of several µs: under 1% of a write. Without the flag, nothing is wrapped (and the count is null).
 */
function countWrites(enabled) {
  if (!enabled) return () => null;
  let count = 0;
  const write = net.Socket.prototype.write;
  net.Socket.prototype.write = function countedWrite(...args) {
    count++;
    return write.apply(this, args);
  };
  return () => count;
}

/**
 * A CPU profile of a measured phase alone (`profileStart`, then `profileStop` writes it), through
 * the inspector: `node --cpu-prof` would profile the whole process (connecting included) and writes
 * its file at a clean exit only, which the runner's SIGKILL never gives. Open the .cpuprofile in
 * Chrome DevTools, or summarise it by function.
 */
function profiler() {
  let session;
  return {
    profileStart: async ({ intervalUs = 200 } = {}) => {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
      await session.post('Profiler.start');
      return {};
    },
    profileStop: async ({ file }) => {
      if (!session) throw new Error('profileStop before profileStart');
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      session = undefined;
      writeFileSync(file, JSON.stringify(profile));
      return { file };
    },
  };
}

function cpuSince(start) {
  const { user, system } = process.cpuUsage(start);
  return { userUs: user, systemUs: system, totalUs: user + system };
}

/** Memory after a full GC (twice: the first pass can leave work for finalizers). */
function memory() {
  global.gc();
  global.gc();
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapUsed, external, arrayBuffers };
}

// ---------------------------------------------------------------------------------------------
// The replay storm's probe: what the server holds while thousands of clients catch up at once.

const SAMPLE_MS = 50;
// Walking every socket costs about 0.25 µs per socket (a cache miss or two each: 2.5 ms at 10,000),
// so unsent bytes are read every fifth sample only (RSS every sample).
const UNSENT_EVERY = 5;

/**
 * `stormStart` takes the baseline (RSS after a full GC, CPU, the library's counters) and starts
 * sampling every 50 ms: RSS; the bytes each socket holds unsent (`socket.writableLength`: what
 * the process has accepted and the kernel has not, per connection, the figure a design bound
 * speaks of), every 250 ms; and with `evictions`, when the library's `evicted` count has grown
 * by that much. `stormCaughtUp` reads the CPU at the moment every client has caught up;
 * `stormStop` ends sampling (after the wait for evictions, if any) and reports the peaks.
 *
 * A timer in this process can be held up by the very work it is watching (a long synchronous
 * burst of writes), so RSS has a second source that misses nothing: the kernel's high-water mark
 * (`VmHWM` in /proc/self/status), reset at the start (`echo 5 > /proc/self/clear_refs`; Linux
 * only, and the sampled peak stands alone elsewhere). The probe's own time is counted in the
 * server's CPU (a few per cent of it at 10,000 clients) and reported in the JSON (`probeMs`).
 */
function stormProbe(server, connections, stats) {
  const sockets = new Set();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  let run = null;

  function sample(final = false) {
    const startedMs = performance.now();
    const rss = process.memoryUsage.rss();
    if (rss > run.peakRss) run.peakRss = rss;
    if (run.samples % UNSENT_EVERY === 0 || final) {
      let total = 0;
      let max = 0;
      for (const socket of sockets) {
        const unsent = socket.writableLength;
        total += unsent;
        if (unsent > max) max = unsent;
      }
      if (total > run.peakUnsentTotal) run.peakUnsentTotal = total;
      if (max > run.peakUnsentPerSocket) run.peakUnsentPerSocket = max;
    }
    if (run.evictions && run.evictedAtS === null && stats().evicted - run.statsBefore.evicted >= run.evictions) {
      run.evictedAtS = (startedMs - run.startedMs) / 1000;
    }
    run.samples++;
    run.probeMs += performance.now() - startedMs;
  }

  return {
    stormStart: ({ evictions = 0 }) => {
      global.gc();
      global.gc();
      const rssBefore = process.memoryUsage.rss();
      const hwmReset = resetHighWaterMark();
      run = {
        rssBefore,
        hwmReset,
        peakRss: rssBefore,
        peakUnsentTotal: 0,
        peakUnsentPerSocket: 0,
        samples: 0,
        probeMs: 0, // the probe's own time, counted in the storm's CPU
        evictions: stats() ? evictions : 0,
        evictedAtS: null,
        statsBefore: stats(),
        startedMs: performance.now(),
        cpuAtStart: process.cpuUsage(),
      };
      run.timer = setInterval(sample, SAMPLE_MS);
      sample();
      return { rssBefore, hwmReset, statsBefore: run.statsBefore };
    },
    stormCaughtUp: () => {
      if (!run) throw new Error('stormCaughtUp before stormStart');
      sample(true);
      return { cpu: cpuSince(run.cpuAtStart), stats: stats(), connections: connections(), sockets: sockets.size };
    },
    stormStop: () => {
      if (!run) throw new Error('stormStop before stormStart');
      clearInterval(run.timer);
      sample(true);
      const hwm = run.hwmReset ? highWaterMark() : null;
      const result = {
        rssBefore: run.rssBefore,
        peakRssSampled: run.peakRss,
        peakRssHwm: hwm,
        // The high-water mark sees every page the process touched since the reset; a sample only
        // what was resident at that instant. Whichever is higher (the mark, when it works).
        peakRss: Math.max(run.peakRss, hwm ?? 0),
        peakUnsentTotal: run.peakUnsentTotal,
        peakUnsentPerSocket: run.peakUnsentPerSocket,
        samples: run.samples,
        probeMs: run.probeMs,
        evictedAtS: run.evictedAtS,
        seconds: (performance.now() - run.startedMs) / 1000,
        stats: stats(),
        connections: connections(),
        sockets: sockets.size,
      };
      global.gc();
      global.gc();
      result.rssSettled = process.memoryUsage.rss();
      run = null;
      return result;
    },
  };
}

/** Resets the kernel's peak-RSS mark for this process; false where that is not possible. */
function resetHighWaterMark() {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return highWaterMark() !== null;
  } catch {
    return false;
  }
}

/** VmHWM, in bytes, or null. */
function highWaterMark() {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}
