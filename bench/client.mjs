// The load client: its own process, raw `net` sockets (no EventSource, no http.Agent), so that
// what it costs is small and the same whichever server it talks to. Commands from the runner
// arrive over IPC; see `commands` at the bottom.
//
// Each connection parses the HTTP response head, then decodes the body, chunked or
// close-delimited (whichever the head announces), and counts events the way a browser would:
// an event is dispatched by a blank line, and only if it had a `data` field (comments and
// keep-alives are not events). On a sampled subset of connections it also reads the publish
// timestamp at the start of the data and records publish-to-receive latency.
import net from 'node:net';

const LF = 10;
const CR = 13;
const DATA = [0x64, 0x61, 0x74, 0x61]; // "data"

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

// ---------------------------------------------------------------------------------------------
// One SSE connection: a small byte-level state machine. Bytes, not strings: decoding every
// chunk to a string would cost more than the server's work we are trying to measure.

const HEAD = 0;
const CHUNK_SIZE = 1;
const CHUNK_DATA = 2;
const CHUNK_CRLF = 3;
const IDENTITY = 4; // close-delimited body
const DONE = 5;

class SseConnection {
  constructor(socket, sampled, onHead) {
    this.socket = socket;
    this.sampled = sampled;
    this.onHead = onHead; // (ok: boolean) => void, called once
    this.state = HEAD;
    this.head = '';
    this.chunkSize = 0;
    this.inChunkExt = false;
    this.chunkLeft = 0;
    // Event parser.
    this.afterCR = false; // a CR ended the last line; an LF right after it is part of that end
    this.lineLen = 0;
    this.dataMatch = 0; // how much of "data" the current line starts with; -1: not a data line
    this.eventHasData = false;
    this.timestamp = -1; // -1: not reading digits yet; -2: done with this event's digits
    this.eventTimestamp = 0;
    this.pending = 0; // events completed during the current socket read
    this.nowUs = 0;
  }

  onData(buf) {
    let i = 0;
    if (this.state === HEAD) {
      i = this.readHead(buf);
      if (i < 0) return;
    }
    this.pending = 0;
    this.nowUs = 0;
    if (this.state === IDENTITY) this.parseEvents(buf, i, buf.length);
    else this.readChunked(buf, i);
    if (this.pending > 0) delivered(this.pending);
  }

  /** Returns where the body starts in `buf`, or -1 if the head is not complete yet. */
  readHead(buf) {
    const previous = this.head.length;
    this.head += buf.toString('latin1');
    const end = this.head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.head.length > 16384) this.fail(); // not an HTTP response we understand
      return -1;
    }
    const ok = /^HTTP\/1\.[01] 200 /.test(this.head);
    const chunked = /\r\ntransfer-encoding:[ \t]*chunked/i.test(this.head.slice(0, end + 2));
    this.head = '';
    this.state = chunked ? CHUNK_SIZE : IDENTITY;
    this.onHead(ok);
    if (!ok) {
      this.state = DONE;
      this.socket.destroy();
      return -1;
    }
    return end + 4 - previous;
  }

  readChunked(buf, i) {
    const end = buf.length;
    while (i < end) {
      switch (this.state) {
        case CHUNK_SIZE: {
          // hex digits, then maybe ";extensions", then CRLF
          const c = buf[i++];
          if (c === LF) {
            const size = this.chunkSize;
            this.chunkSize = 0;
            this.inChunkExt = false;
            if (size === 0) {
              this.state = DONE; // the last chunk: the server ended the stream
              return;
            }
            this.chunkLeft = size;
            this.state = CHUNK_DATA;
          } else if (!this.inChunkExt) {
            const digit = hexValue(c);
            if (digit >= 0) this.chunkSize = this.chunkSize * 16 + digit;
            else this.inChunkExt = true; // ';' or CR: the size is complete
          }
          break;
        }
        case CHUNK_DATA: {
          const stop = Math.min(end, i + this.chunkLeft);
          this.parseEvents(buf, i, stop);
          this.chunkLeft -= stop - i;
          i = stop;
          if (this.chunkLeft === 0) this.state = CHUNK_CRLF;
          break;
        }
        case CHUNK_CRLF: {
          if (buf[i++] === LF) this.state = CHUNK_SIZE;
          break;
        }
        default:
          return;
      }
    }
  }

  /** The text/event-stream line rules: lines end in CRLF, LF or CR; a blank line dispatches. */
  parseEvents(buf, start, end) {
    for (let i = start; i < end; i++) {
      const c = buf[i];
      if (c === LF) {
        if (this.afterCR) this.afterCR = false;
        else this.endLine();
      } else if (c === CR) {
        this.endLine();
        this.afterCR = true;
      } else {
        this.afterCR = false;
        this.lineChar(c);
      }
    }
  }

  lineChar(c) {
    const n = this.lineLen++;
    if (n < 4) {
      if (this.dataMatch === n && c === DATA[n]) this.dataMatch = n + 1;
      else this.dataMatch = -1;
    } else if (n === 4 && this.dataMatch === 4) {
      this.dataMatch = c === 0x3a /* : */ ? 5 : -1;
    } else if (this.sampled && this.dataMatch === 5 && this.timestamp !== -2) {
      // The first digits of the first data line are the publish time (µs); better-sse wraps
      // the string in JSON quotes, so skip anything before the digits.
      const isDigit = c >= 0x30 && c <= 0x39;
      if (isDigit) this.timestamp = (this.timestamp < 0 ? 0 : this.timestamp) * 10 + (c - 0x30);
      else if (this.timestamp >= 0) {
        this.eventTimestamp = this.timestamp;
        this.timestamp = -2;
      }
    }
  }

  endLine() {
    if (this.lineLen === 0) {
      // Blank line: dispatch, if the event had data.
      if (this.eventHasData) {
        this.pending++;
        if (this.sampled) this.sample();
      }
      this.eventHasData = false;
      this.timestamp = -1;
      this.eventTimestamp = 0;
    } else {
      // "data" alone on a line is a data field too (with an empty value).
      if (this.dataMatch === 5 || (this.dataMatch === 4 && this.lineLen === 4)) {
        this.eventHasData = true;
        if (this.timestamp >= 0) {
          this.eventTimestamp = this.timestamp; // digits ran to the end of the line
          this.timestamp = -2;
        }
      }
    }
    this.lineLen = 0;
    this.dataMatch = 0;
  }

  sample() {
    if (this.eventTimestamp <= 0 || totals.sampleCount >= MAX_SAMPLES) return;
    if (this.nowUs === 0) this.nowUs = nowUs(); // once per socket read
    totals.samples[totals.sampleCount++] = this.nowUs - this.eventTimestamp;
  }

  fail() {
    this.state = DONE;
    this.onHead(false);
    this.socket.destroy();
  }
}

function hexValue(c) {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Opening connections.

const open = new Set(); // sockets of the current fan-out / idle run

/**
 * Opens one SSE connection; resolves true once the 200 head has arrived, false on any failure
 * (refused, reset, non-200, or no head within `timeoutMs`).
 */
function connectOne({ port, path, sampled, timeoutMs, keep }) {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(ok);
    };
    const socket = net.connect({ port, host: '127.0.0.1' });
    const conn = new SseConnection(socket, sampled, settle);
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
    socket.on('data', (buf) => conn.onData(buf));
    socket.on('error', () => settle(false));
    socket.on('close', () => {
      settle(false);
      if (keep && open.delete(socket)) totals.closedEarly++;
    });
    if (keep) open.add(socket);
  });
}

/** `count` connections, `batch` at a time: a SYN flood would only measure the listen backlog. */
async function connectMany({ port, path, count, batch = 500, sampleEvery = 10, timeoutMs = 60_000 }) {
  const started = performance.now();
  const deadline = started + timeoutMs;
  let connected = 0;
  let failed = 0;
  for (let first = 0; first < count; first += batch) {
    const left = deadline - performance.now();
    if (left <= 0) break;
    const size = Math.min(batch, count - first);
    const results = await Promise.all(
      Array.from({ length: size }, (_, k) =>
        connectOne({
          port,
          path,
          sampled: (first + k) % sampleEvery === 0,
          timeoutMs: Math.min(left, 15_000),
          keep: true,
        }),
      ),
    );
    for (const ok of results) ok ? connected++ : failed++;
  }
  return { connected, failed, ms: performance.now() - started };
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
    const conn = new SseConnection(socket, false, (good) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(good);
    });
    const timer = setTimeout(() => conn.fail(), timeoutMs);
    socket.on('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    socket.on('data', (buf) => conn.onData(buf));
    socket.on('error', () => conn.fail());
    socket.on('close', () => conn.fail());
  });
}

function closeAll() {
  const count = open.size;
  for (const socket of open) socket.destroy();
  open.clear();
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
  closeAll: () => closeAll(),
};

process.on('message', async (msg) => {
  const command = commands[msg.cmd];
  try {
    if (!command) throw new Error(`unknown command ${msg.cmd}`);
    process.send({ type: 'reply', id: msg.id, ok: true, value: await command(msg) });
  } catch (err) {
    process.send({ type: 'reply', id: msg.id, ok: false, error: String(err?.stack ?? err) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
