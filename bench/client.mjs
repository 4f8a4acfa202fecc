// The load client: its own process, raw `net` sockets (no EventSource, no http.Agent), so that
// what it costs is small and the same whichever server it talks to. Commands from the runner
// arrive over IPC; see `commands` at the bottom.
//
// Each connection parses the HTTP response head, then decodes the body, chunked or
// close-delimited (whichever the head announces), and counts events the way a browser would:
// an event is dispatched by a blank line, and only if it had a `data` field (comments and
// keep-alives are not events). On a sampled subset of connections it also reads the publish
// timestamp at the start of the data and records publish-to-receive latency. The parser is in
// lib/sse-parser.mjs (checked against eventsource-parser by client-selftest.mjs).
import { answerRequests } from './lib/child.mjs';
import net from 'node:net';
import { SseResponseParser } from './lib/sse-parser.mjs';

/** Microseconds on the monotonic clock, the same clock the server stamps events with. */
function nowUs() {
  const [s, ns] = process.hrtime();
  return s * 1e6 + ns / 1e3;
}

// ---------------------------------------------------------------------------------------------
// Totals across every connection of the current run.

const MAX_SAMPLES = 1_000_000; // bounds the client's memory whatever the run size
const totals = {
  deliveries: 0,
  expected: Infinity, // deliveries that make the run complete; set by `expect`
  lastRecvUs: 0,
  samples: new Float64Array(MAX_SAMPLES),
  sampleCount: 0,
  closedEarly: 0, // connections the server ended or reset while we still held them
  completeSent: false,
  cpuAtStart: process.cpuUsage(),
};

function resetTotals(expected) {
  totals.deliveries = 0;
  totals.expected = expected;
  totals.lastRecvUs = 0;
  totals.sampleCount = 0;
  totals.closedEarly = 0;
  totals.completeSent = false;
  totals.cpuAtStart = process.cpuUsage();
}

/** Called once per socket read that completed at least one event. */
function delivered(count) {
  totals.deliveries += count;
  totals.lastRecvUs = nowUs();
  if (!totals.completeSent && totals.deliveries >= totals.expected) {
    totals.completeSent = true; // tell the runner at once, so it can stop the server's CPU clock
    process.send({ type: 'complete', deliveries: totals.deliveries, lastRecvUs: totals.lastRecvUs });
  }
}

/**
 * A parser for one socket's response. Events are totalled once per read; on a sampled
 * connection, each event's latency is taken against one clock reading per read.
 */
function attachParser(socket, { sampled, onHead }) {
  let readUs = 0;
  const parser = new SseResponseParser({
    sampled,
    onHead: (ok) => {
      if (!ok) socket.destroy(); // not a 200 (or no head): nothing to count on this socket
      onHead(ok);
    },
    onSample: (timestampUs) => {
      if (totals.sampleCount >= MAX_SAMPLES) return;
      if (readUs === 0) readUs = nowUs();
      totals.samples[totals.sampleCount++] = readUs - timestampUs;
    },
  });
  socket.on('data', (buf) => {
    readUs = 0;
    const count = parser.onData(buf);
    if (count > 0) delivered(count);
  });
  return parser;
}

// ---------------------------------------------------------------------------------------------
// Opening connections.

const open = new Set(); // sockets of the current fan-out / idle run

/**
 * Opens one SSE connection; resolves true once the 200 head has arrived, false on any failure
 * (refused, reset, non-200, or no head within `timeoutMs`).
 */
function connectOne({ port, path, sampled, timeoutMs, keep, localAddress }) {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(ok);
    };
    // `localAddress` (127.0.0.x): past one address's ~28,000 ephemeral ports.
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    attachParser(socket, { sampled, onHead: settle });
    const timer = setTimeout(() => {
      settle(false);
      socket.destroy();
    }, timeoutMs);
    socket.on('connect', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n` +
          `Cache-Control: no-cache\r\n\r\n`,
      );
    });
    socket.on('error', () => settle(false));
    socket.on('close', () => {
      settle(false);
      if (keep && open.delete(socket)) totals.closedEarly++;
    });
    if (keep) open.add(socket);
  });
}

/**
 * `count` connections, `batch` at a time (a SYN flood would only measure the listen backlog):
 * `one(k, timeoutMs)` opens the k-th and resolves true once it is connected, given what is left
 * of `timeoutMs` (at most 15 s). Stops at `timeoutMs`; `untried`: the connections not opened by then.
 */
async function inBatches({ count, batch, timeoutMs, one }) {
  const started = performance.now();
  const deadline = started + timeoutMs;
  let connected = 0;
  let failed = 0;
  let untried = 0;
  for (let first = 0; first < count; first += batch) {
    const left = deadline - performance.now();
    if (left <= 0) {
      untried = count - first;
      break;
    }
    const size = Math.min(batch, count - first);
    const results = await Promise.all(Array.from({ length: size }, (_, i) => one(first + i, Math.min(left, 15_000))));
    for (const ok of results) ok ? connected++ : failed++;
  }
  return { connected, failed, untried, ms: performance.now() - started };
}

/** `count` connections, `batch` at a time (`inBatches`); those not opened by `timeoutMs` are not counted. */
async function connectMany({ port, path, count, batch = 500, sampleEvery = 10, timeoutMs = 60_000, localAddress }) {
  const { connected, failed, ms } = await inBatches({
    count,
    batch,
    timeoutMs,
    one: (k, left) => connectOne({ port, path, sampled: k % sampleEvery === 0, timeoutMs: left, keep: true, localAddress }),
  });
  return { connected, failed, ms };
}

/**
 * Connection churn: `count` cycles of connect, wait for the head, disconnect, with at most
 * `concurrency` in flight; stops early at `timeoutMs`.
 */
async function churn({ port, path, count, concurrency = 50, timeoutMs = 60_000 }) {
  const started = performance.now();
  const deadline = started + timeoutMs;
  let next = 0;
  let ok = 0;
  let failed = 0;
  async function worker() {
    while (next < count && performance.now() < deadline) {
      next++;
      const good = await connectOneAndLeave({ port, path, timeoutMs: 10_000 });
      good ? ok++ : failed++;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ok, failed, ms: performance.now() - started };
}

function connectOneAndLeave({ port, path, timeoutMs }) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const parser = attachParser(socket, {
      sampled: false,
      onHead: (good) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(good);
      },
    });
    const timer = setTimeout(() => parser.fail(), timeoutMs);
    socket.on('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    socket.on('error', () => parser.fail());
    socket.on('close', () => parser.fail());
  });
}

// ---------------------------------------------------------------------------------------------
// The replay storm.

const stormSockets = new Set();

function request(path, port, lastEventId) {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n` +
    `Cache-Control: no-cache\r\nLast-Event-ID: ${lastEventId}\r\n\r\n`
  );
}

/**
 * A storm, as the replay storm and the reconnect storm both run it: `count` connections opened as
 * fast as the server answers them, with at most `window` waiting for their response head: the
 * server's listen backlog (511) holds only so many, and a SYN dropped past it is retried a second
 * later, which would measure the kernel's timer, not the server. Each must then receive the `owed`
 * events it is owed. Resolves once every connection has caught up or failed (out of order, closed
 * early, no head), or at `timeoutMs`, with the tallies over `conns` and the storm's clocks.
 *
 * What differs between the storms is passed in:
 * - `conns`, the connection records tallied at the end (each `{ head, got, wrong, closed, settled }`
 *   and whatever the storm keeps), and `next(k)`, the record of the k-th connection to open;
 * - `open(conn)`: its socket, connecting, and `request()`, what it sends once connected;
 *   `gone(conn, socket)` once that socket has closed;
 * - `check(conn, id, seq)`, per event, once `conn.got` counts it (`id`: the number its id ends
 *   with; `seq`: with `sampled`, the leading digits of its data, else -1): 'wrong' (out of order
 *   or not its own), 'caughtUp' (it has all it is owed), or nothing;
 * - `tallyExtra`: connections that got more than `owed` count as `extra`, not as caught up;
 * - `fields`, reported after `count`; `startedUs`, reported if given; `cpuAtStart` and `started`,
 *   for a storm whose clocks started before it called this.
 */
function runStorm({
  count,
  conns,
  next,
  open,
  gone,
  check,
  owed,
  tallyExtra = false,
  sampled = false,
  window,
  timeoutMs,
  headTimeoutMs,
  fields = {},
  startedUs,
  cpuAtStart = process.cpuUsage(),
  started = performance.now(),
}) {
  let launched = 0;
  let waitingForHead = 0;
  let settled = 0;
  let heads = 0;
  let received = 0;
  let lastHeadMs = 0;
  let lastCaughtUpMs = 0;
  let finished = false;
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(true), timeoutMs);

    function settle(conn) {
      if (conn.settled) return;
      conn.settled = true;
      if (++settled === count) finish(false);
    }

    function finish(timedOut) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      const tally = tallyExtra
        ? { caughtUp: 0, wrongOrder: 0, extra: 0, short: 0, noHead: 0, closedEarly: 0 }
        : { caughtUp: 0, wrongOrder: 0, short: 0, noHead: 0, closedEarly: 0 };
      for (const c of conns) {
        if (!c.head) tally.noHead++;
        else if (c.wrong) tally.wrongOrder++;
        else if (tallyExtra && c.got > owed) tally.extra++;
        else if (c.got >= owed) tally.caughtUp++;
        else tally.short++;
        if (c.head && c.closed && c.got < owed) tally.closedEarly++;
      }
      resolve({
        count,
        ...fields,
        launched,
        heads,
        ...tally,
        received,
        timedOut,
        ...(startedUs === undefined ? {} : { startedUs }),
        connectMs: lastHeadMs - started,
        caughtUpMs: lastCaughtUpMs - started,
        ms: performance.now() - started,
        cpuUs: (({ user, system }) => user + system)(process.cpuUsage(cpuAtStart)),
      });
    }

    function launch() {
      while (!finished && waitingForHead < window && launched < count) openOne(next(launched++));
    }

    function openOne(conn) {
      waitingForHead++;
      const { socket, request } = open(conn);
      let seq = -1;
      const headTimer = setTimeout(() => parser.fail(), headTimeoutMs);
      const parser = new SseResponseParser({
        sampled,
        onHead: (ok) => {
          clearTimeout(headTimer);
          waitingForHead--;
          if (ok) {
            conn.head = true;
            heads++;
            lastHeadMs = performance.now();
          } else {
            socket.destroy();
            settle(conn);
          }
          launch();
        },
        onSample: (n) => (seq = n),
        onEvent: (id) => {
          received++;
          conn.got++;
          const verdict = check(conn, id, seq);
          if (verdict === 'wrong') {
            if (!conn.wrong) {
              conn.wrong = true;
              settle(conn);
            }
          } else if (verdict === 'caughtUp') {
            lastCaughtUpMs = performance.now();
            settle(conn);
          }
          seq = -1;
        },
      });
      socket.on('data', (buf) => parser.onData(buf));
      socket.on('connect', () => socket.write(request()));
      socket.on('error', () => parser.fail());
      socket.on('close', () => {
        gone(conn, socket);
        conn.closed = true;
        parser.fail();
        settle(conn);
      });
    }

    if (count === 0) finish(false);
    else launch();
  });
}

/**
 * The readers of a replay storm (`runStorm`): `count` connections sending `Last-Event-ID:
 * lastEventId`, each of which must then receive exactly `events` events numbered `firstSeq`,
 * `firstSeq + 1`, ... (the number its id ends with), in order. A wrong or extra id fails it.
 */
function storm({ port, path, count, window = 400, lastEventId, firstSeq, events, timeoutMs = 60_000, headTimeoutMs = 15_000 }) {
  const conns = [];
  return runStorm({
    count,
    conns,
    next: () => {
      const conn = { head: false, got: 0, next: firstSeq, wrong: false, closed: false, settled: false };
      conns.push(conn);
      return conn;
    },
    open: () => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      stormSockets.add(socket);
      return { socket, request: () => request(path, port, lastEventId) };
    },
    gone: (conn, socket) => stormSockets.delete(socket),
    check: (conn, id) => (id !== conn.next++ ? 'wrong' : conn.got === events && !conn.wrong ? 'caughtUp' : undefined),
    owed: events,
    tallyExtra: true,
    window,
    timeoutMs,
    headTimeoutMs,
  });
}

/**
 * Clients that send their request and never read a byte: paused before they connect, so Node
 * never starts reading them, and what the server sends piles up in the kernel's buffers and then
 * in the server. Resolves once every request is written (or failed), or at `timeoutMs`.
 */
function stall({ port, path, count, lastEventId, timeoutMs = 20_000 }) {
  const started = performance.now();
  return new Promise((resolve) => {
    let written = 0;
    let failed = 0;
    const done = () => {
      if (written + failed < count) return;
      clearTimeout(timer);
      resolve({ written, failed, ms: performance.now() - started });
    };
    const timer = setTimeout(() => {
      failed = count - written;
      done();
    }, timeoutMs);
    if (count === 0) done();
    for (let k = 0; k < count; k++) {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.pause();
      stormSockets.add(socket);
      let counted = false;
      const count1 = (ok) => {
        if (counted) return;
        counted = true;
        ok ? written++ : failed++;
        done();
      };
      socket.on('connect', () => socket.write(request(path, port, lastEventId), (error) => count1(!error)));
      socket.on('error', () => count1(false));
      socket.on('close', () => stormSockets.delete(socket));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The reconnect storm: clients that were live, fell behind, and all come back at once, each with
// the id of the last event it had itself received.
//
// Every event of the storm carries its sequence number as the leading digits of its data (the
// runner publishes them so), read with the parser's sampling (`onSample`, the digits a fan-out
// reads as a timestamp), so that order and gaps are checked the same way whatever a server's ids
// look like (`<n>`, `<epoch>-<n>`, Redis stream ids). The id's text is what goes back as
// `Last-Event-ID`.

/** @type {Array<{ k: number, socket: import('node:net').Socket | null, lastId: string | undefined, lastSeq: number }>} */
let rsConns = [];
/** The storm's connections: per client, what it got since it came back. */
let rsStormConns = [];
/** @type {string[] | undefined} each client's bearer token, kept from `rsConnect` for the storm */
let rsTokens;

function rsRequest(path, port, { token, lastEventId }) {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n` +
    (token === undefined ? '' : `Authorization: Bearer ${token}\r\n`) +
    (lastEventId === undefined ? '' : `Last-Event-ID: ${lastEventId}\r\n`) +
    '\r\n'
  );
}

/**
 * The storm's clients, live: `count` connections, client k to `ports[k % ports.length]` with
 * `tokens[k]` (if any) as its bearer token, `batch` at a time. Each keeps the id (text) and the
 * sequence number of the last event it received.
 */
async function rsConnect({ ports, path, count, tokens, batch = 500, timeoutMs = 60_000 }) {
  for (const conn of rsConns) conn.socket?.destroy();
  rsConns = [];
  rsTokens = tokens;
  const { connected, failed, untried, ms } = await inBatches({
    count,
    batch,
    timeoutMs,
    one: (k, left) => rsOpenLive(k, ports, path, tokens?.[k], left),
  });
  return { connected, failed: failed + untried, ms };
}

function rsOpenLive(k, ports, path, token, timeoutMs) {
  return new Promise((resolve) => {
    const port = ports[k % ports.length];
    const conn = { k, socket: null, lastId: undefined, lastSeq: 0 };
    let seq = -1;
    let settled = false;
    const settle = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ok) rsConns.push(conn);
      else socket.destroy();
      resolve(ok);
    };
    const socket = net.connect({ port, host: '127.0.0.1' });
    conn.socket = socket;
    const parser = new SseResponseParser({
      sampled: true,
      idText: true,
      onHead: settle,
      onSample: (n) => (seq = n),
      onEvent: (id, text) => {
        conn.lastId = text;
        conn.lastSeq = seq;
        seq = -1;
      },
    });
    const timer = setTimeout(() => parser.fail(), timeoutMs);
    socket.on('data', (buf) => parser.onData(buf));
    socket.on('connect', () => socket.write(rsRequest(path, port, { token })));
    socket.on('error', () => parser.fail());
    socket.on('close', () => {
      parser.fail();
      if (conn.socket === socket) conn.socket = null;
    });
  });
}

/** Waits until every live client has received event `seq` (or later); at most `timeoutMs`. */
async function rsWaitFor({ seq, timeoutMs = 15_000 }) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const have = rsConns.filter((c) => c.lastSeq >= seq).length;
    if (have === rsConns.length || performance.now() >= deadline) {
      return { have, of: rsConns.length, open: rsConns.filter((c) => c.socket !== null).length };
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Every client closes its connection at once (a network blip, a proxy restart), keeping the id
 * and number of the last event it received for when it comes back (`rsStorm`).
 */
function rsLeave() {
  let closed = 0;
  for (const conn of rsConns) {
    if (conn.socket === null) continue;
    conn.socket.destroy();
    conn.socket = null;
    closed++;
  }
  return { closed };
}

/**
 * The storm (`runStorm`): every client that left (`rsLeave`; any still connected close now) comes
 * back at once, client k with `Last-Event-ID` its own last id, to `ports[(k + shift) % ports.length]`
 * (shift 1: the other instance, as a load balancer may send it), with the token it had. As in the
 * replay storm, at most `window` wait for their head. Each must then receive, in order, the `owed`
 * events after its last one. Resolves once every client has them or has failed, or at `timeoutMs`;
 * the connections stay open for `rsLive`.
 */
function rsStorm({ ports, path, shift = 0, owed, window = 400, timeoutMs = 60_000, headTimeoutMs = 15_000 }) {
  const cpuAtStart = process.cpuUsage();
  const startedUs = nowUs();
  const started = performance.now();
  const count = rsConns.length;
  let noLastId = 0;
  rsStormConns = rsConns.map((old) => {
    if (old.lastId === undefined) noLastId++;
    return { k: old.k, lastId: old.lastId, from: old.lastSeq, socket: null, head: false, got: 0, wrong: false, closed: false, settled: false, liveUs: 0 };
  });
  for (const old of rsConns) old.socket?.destroy();
  rsConns = [];
  const conns = rsStormConns;
  return runStorm({
    count,
    conns,
    next: (k) => conns[k],
    open: (conn) => {
      const port = ports[(conn.k + shift) % ports.length];
      const socket = net.connect({ port, host: '127.0.0.1' });
      conn.socket = socket;
      return { socket, request: () => rsRequest(path, port, { token: rsTokens?.[conn.k], lastEventId: conn.lastId }) };
    },
    gone: (conn) => (conn.socket = null),
    sampled: true,
    check: (conn, id, seq) => {
      if (seq !== conn.from + conn.got) return 'wrong';
      if (conn.got === owed) return 'caughtUp';
      if (conn.got === owed + 1) conn.liveUs = nowUs(); // the first event after the missed ones: live
      return undefined;
    },
    owed,
    window,
    timeoutMs,
    headTimeoutMs,
    fields: { noLastId },
    startedUs,
    cpuAtStart,
    started,
  });
}

/**
 * After the storm: waits until every client that caught up has also received the next event
 * (published once they all had, so it reached them live), for at most `timeoutMs`. Reports how
 * many did, when the last did (µs, monotonic clock), and who got more than that one.
 */
async function rsLive({ owed, timeoutMs = 15_000 }) {
  const deadline = performance.now() + timeoutMs;
  const candidates = rsStormConns.filter((c) => c.head && !c.wrong && c.got >= owed);
  for (;;) {
    const live = candidates.filter((c) => c.got >= owed + 1 && !c.wrong);
    if (live.length === candidates.length || performance.now() >= deadline) {
      return {
        live: live.length,
        of: candidates.length,
        wrongOrder: candidates.filter((c) => c.wrong).length,
        extra: candidates.filter((c) => c.got > owed + 1).length,
        lastLiveUs: live.reduce((max, c) => Math.max(max, c.liveUs), 0),
        open: rsStormConns.filter((c) => c.socket !== null).length,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function rsClose() {
  let closed = 0;
  for (const conn of [...rsConns, ...rsStormConns]) {
    if (conn.socket) {
      conn.socket.destroy();
      closed++;
    }
  }
  rsConns = [];
  rsStormConns = [];
  return { closed };
}

function closeAll() {
  const count = open.size + stormSockets.size;
  for (const socket of open) socket.destroy();
  for (const socket of stormSockets) socket.destroy();
  open.clear();
  stormSockets.clear();
  return { closed: count };
}

// ---------------------------------------------------------------------------------------------
// Reporting.

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function report() {
  const sorted = totals.samples.slice(0, totals.sampleCount).sort();
  return {
    deliveries: totals.deliveries,
    lastRecvUs: totals.lastRecvUs,
    open: open.size,
    closedEarly: totals.closedEarly,
    latencyUs: {
      samples: sorted.length,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1] : null,
    },
    // The client's own CPU since `expect`: if it nears one core, the client is the bottleneck.
    cpuUs: (({ user, system }) => user + system)(process.cpuUsage(totals.cpuAtStart)),
  };
}

const commands = {
  connect: (msg) => connectMany(msg),
  expect: ({ deliveries }) => (resetTotals(deliveries), {}),
  report: () => report(),
  churn: (msg) => churn(msg),
  // The client's CPU so far (µs): a section that times a run takes the difference.
  cpu: () => (({ user, system }) => ({ totalUs: user + system }))(process.cpuUsage()),
  storm: (msg) => storm(msg),
  stall: (msg) => stall(msg),
  closeAll: () => closeAll(),
  rsConnect: (msg) => rsConnect(msg),
  rsWaitFor: (msg) => rsWaitFor(msg),
  rsLeave: () => rsLeave(),
  rsStorm: (msg) => rsStorm(msg),
  rsLive: (msg) => rsLive(msg),
  rsClose: () => rsClose(),
};

answerRequests(commands);
process.send({ type: 'ready' });
