// What every server variant shares: listen on 127.0.0.1, report the port, and answer the
// runner's commands over IPC. A variant supplies only what differs: its http.Server, how it
// publishes one event, and how many SSE streams it holds.
//
// Publishing is driven here, inside the server process, so the timestamps the client sees are
// taken right before the library call, and the CPU the server spends is measured where it is
// spent.

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
 */
export function runServer({ server, publish, connections, stats = () => null }) {
  // A client that vanishes mid-request must not take the server down.
  server.on('clientError', (err, socket) => socket.destroy());

  let cpuAtRunStart = null;
  const commands = {
    connections: () => ({ count: connections() }),
    stats: () => stats(),
    memory: () => memory(),
    run: async ({ events, size, intervalMs = 0 }) => {
      cpuAtRunStart = process.cpuUsage();
      return { ...(await publishAll(publish, events, size, intervalMs)), cpu: cpuSince(cpuAtRunStart) };
    },
    // CPU from the start of the run until now: the runner asks once every event has arrived
    // (or the scenario timed out), so writes the server finished after its last publish count.
    cpu: () => cpuSince(cpuAtRunStart ?? process.cpuUsage()),
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
 */
async function publishAll(publish, events, size, intervalMs) {
  const startMs = performance.now();
  let firstUs = 0;
  for (let n = 1; n <= events; n++) {
    const t = nowUs();
    if (n === 1) firstUs = t;
    await publish(n, payload(t, size));
    const wait = intervalMs > 0 ? startMs + n * intervalMs - performance.now() : 0;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    else await new Promise(setImmediate);
  }
  return { published: events, firstUs, lastUs: nowUs() };
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
