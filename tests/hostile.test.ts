/**
 * Hostile clients against a real node:http server: oversized and odd `Last-Event-ID` values,
 * clients that vanish mid-write, clients that never read, and connection churn. Each test checks
 * that the server keeps serving everyone else and keeps nothing for clients that are gone.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { serveSse, type SlowClientPolicy, type SseHandler, type SseStream } from '../src/index.js';
import { sharedHeartbeat } from '../src/heartbeat.js';
import { get, listen, openEvents, recordingLogger, text, waitFor, type Running } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

// ---------------------------------------------------------------------------------------------
// Helpers

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}

/** `promise`, or a failure naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `body` against a server with `handler`, and closes the server whatever happens. */
async function withServer(
  handler: SseHandler,
  body: (running: Running) => Promise<void>,
  server: Server = createServer(),
): Promise<void> {
  const running = await listen(handler, server);
  try {
    await body(running);
  } finally {
    await running.close();
  }
}

/** A bare TCP client that sends one GET for an event stream, then does only what the test says. */
async function rawRequest(url: string, path: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  // The server may reset a hostile client; that must not surface as an uncaught 'error' here.
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n\r\n`);
  return socket;
}

/** Records uncaught exceptions and unhandled rejections until `stop()`. */
function recordProcessFaults(): { faults: unknown[]; stop(): void } {
  const faults: unknown[] = [];
  const record = (error: unknown): void => void faults.push(error);
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  return {
    faults,
    stop() {
      process.off('uncaughtException', record);
      process.off('unhandledRejection', record);
    },
  };
}

/** `global.gc`, enabled at run time when the process was not started with --expose-gc. */
function collector(): () => void {
  if (typeof globalThis.gc === 'function') return globalThis.gc;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/** Heap plus off-heap memory (Buffers) after full collections: what the process really holds. */
async function settledMemory(): Promise<number> {
  const gc = collector();
  for (let round = 0; round < 3; round++) {
    gc();
    await nextTurn();
  }
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

function formatMiB(bytes: number): string {
  return `${(bytes / MiB).toFixed(2)} MiB`;
}

/** The socket under a Node request: where a response's unsent bytes wait. */
function socketOf(stream: SseStream): Socket {
  return (stream.request as IncomingMessage).socket;
}

// ---------------------------------------------------------------------------------------------
// 1. Last-Event-ID

describe('a hostile Last-Event-ID', () => {
  /** Answers every client with one event that carries the id the stream saw, then ends. */
  const echoLastEventId = serveSse(
    async (_request, stream) => {
      await stream.send({ event: 'last-event-id', data: { value: stream.lastEventId ?? null } });
    },
    { keepAlive: false },
  );

  /** The `lastEventId` the server saw for a request with these headers (`null`: absent). */
  async function echoedId(url: string, headers: Record<string, string> = {}): Promise<string | null> {
    const reader = await openEvents(url, headers);
    try {
      assert.equal(reader.res.statusCode, 200);
      await reader.until(() => reader.events.length > 0, 5000, 'the echoed id');
      const [event] = reader.events;
      assert.equal(event?.event, 'last-event-id');
      return (JSON.parse(event.data) as { value: string | null }).value;
    } finally {
      reader.res.destroy();
    }
  }

  const huge = 'h'.repeat(64 * KiB);

  test("64 KiB over Node's default maxHeaderSize: 431, and the next client is served", async () => {
    await withServer(echoLastEventId, async ({ url }) => {
      const rejected = await get(url, { accept: 'text/event-stream', 'last-event-id': huge });
      assert.equal(rejected.statusCode, 431);
      await text(rejected);
      assert.equal(await echoedId(url, { 'last-event-id': 'next-1' }), 'next-1');
    });
  });

  test('under a larger maxHeaderSize: an id over the length limit counts as absent', async () => {
    const roomy = createServer({ maxHeaderSize: 128 * KiB });
    await withServer(
      echoLastEventId,
      async ({ url }) => {
        assert.equal(await echoedId(url, { 'last-event-id': huge }), null);
        // The default limit is 1 024 characters: the last one allowed, and the first one over.
        assert.equal(await echoedId(url, { 'last-event-id': 'L'.repeat(1025) }), null);
        assert.equal(await echoedId(url, { 'last-event-id': 'L'.repeat(1024) }), 'L'.repeat(1024));
        const ordinary = 'id-'.padEnd(100, '0');
        assert.equal(await echoedId(url, { 'last-event-id': ordinary }), ordinary);
      },
      roomy,
    );
  });

  test('the lastEventId query parameter stands in for a missing header', async () => {
    await withServer(echoLastEventId, async ({ url }) => {
      assert.equal(await echoedId(`${url}/events?lastEventId=q-9`), 'q-9');
      assert.equal(await echoedId(`${url}/events?lastEventId=q-9`, { 'last-event-id': 'h-1' }), 'h-1');
      assert.equal(await echoedId(`${url}/events?topic=a`), null);
    });
  });

  test('a UTF-8 id sent as raw header bytes comes back as the same text', async () => {
    await withServer(echoLastEventId, async ({ url }) => {
      // Node's client writes header strings as Latin-1, one byte per character: this sends the
      // UTF-8 bytes of 'é-42', as a browser would.
      const utf8Bytes = Buffer.from('é-42').toString('latin1');
      assert.equal(await echoedId(url, { 'last-event-id': utf8Bytes }), 'é-42');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 2. A client that leaves in the middle of a write

interface WriterEnd {
  sends: number;
  closed: boolean;
  aborted: boolean;
}

test('a client that disconnects mid-write: the writer ends, nothing throws, the server serves on', async () => {
  const MAX_SENDS = 10_000;
  const bigEvent = { data: 'x'.repeat(64 * KiB) };
  const writerEnded = deferred<WriterEnd>();
  const { lines, logger } = recordingLogger();
  const handler = serveSse(
    async (request, stream) => {
      if (request.url !== '/big') {
        await stream.send({ data: 'hello' });
        return;
      }
      let sends = 0;
      while (sends < MAX_SENDS && !stream.closed) {
        await stream.send(bigEvent);
        sends++;
      }
      writerEnded.resolve({ sends, closed: stream.closed, aborted: stream.signal.aborted });
    },
    { keepAlive: false, logger },
  );
  const recorder = recordProcessFaults();
  try {
    await withServer(handler, async ({ url }) => {
      const socket = await rawRequest(url, '/big');
      let received = 0;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      // Far enough in that the server is busy writing the next events when the client vanishes.
      await waitFor(() => received >= 256 * KiB, 5000, 'the first 256 KiB');
      socket.destroy();

      const end = await within(writerEnded.promise, 5000, 'the writer to end');
      assert.ok(end.sends < MAX_SENDS, `the writer saw the stream close: it made ${end.sends} sends on a dead connection`);
      assert.equal(end.closed, true);
      assert.equal(end.aborted, true);

      const next = await openEvents(`${url}/small`);
      await next.until(() => next.events.length === 1, 5000, 'the next client');
      assert.equal(next.events[0]?.data, 'hello');
    });
    // Errors from the reset socket arrive on later turns of the event loop.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(recorder.faults, []);
    assert.deepEqual(lines.filter((line) => line.level === 'error'), []);
  } finally {
    recorder.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// 3. A client that never reads

interface FloodResult {
  attempted: number;
  dropped: number;
  closed: boolean;
  aborted: boolean;
  /** The most unsent bytes the server held for the client at any point. */
  maxBuffered: number;
  socketDestroyed: boolean;
}

describe('a client that never reads', () => {
  const HIGH_WATER_MARK = 64 * KiB;
  /** The hard cap: 2 MiB unless set (see the slow-client rule). */
  const MAX_BUFFERED = 2 * MiB;
  const FLOOD_EVENTS = 50_000;
  // 50 MiB in all, far more than the kernel's socket buffers absorb, so most of it meets the policy.
  const KIB_DATA = 'k'.repeat(KiB);
  const FAST_EVENTS = 100;

  async function flood(stream: SseStream): Promise<FloodResult> {
    const socket = socketOf(stream);
    let attempted = 0;
    let maxBuffered = 0;
    while (attempted < FLOOD_EVENTS && !stream.closed) {
      await stream.send({ id: attempted, data: KIB_DATA });
      attempted++;
      maxBuffered = Math.max(maxBuffered, socket.writableLength);
      // Sends resolve at once under drop and close: without a turn of the event loop now and
      // then, the fast client would have nothing to run concurrently with.
      if (attempted % 256 === 0) await nextTurn();
    }
    return {
      attempted,
      dropped: stream.dropped,
      closed: stream.closed,
      aborted: stream.signal.aborted,
      maxBuffered,
      socketDestroyed: socket.destroyed,
    };
  }

  async function fastEvents(stream: SseStream): Promise<void> {
    for (let n = 0; n < FAST_EVENTS && !stream.closed; n++) {
      await stream.send({ id: n, data: `fast ${n}` });
      await nextTurn();
    }
  }

  /** A non-reading client on /slow and a normal one on /fast, same handler, flooded together. */
  async function floodNonReader(policy: SlowClientPolicy): Promise<{ result: FloodResult; growth: number }> {
    const go = deferred<void>();
    const slowStarted = deferred<void>();
    const flooded = deferred<FloodResult>();
    const handler = serveSse(
      async (request, stream) => {
        if (request.url === '/slow') slowStarted.resolve();
        await go.promise;
        if (request.url === '/slow') flooded.resolve(await flood(stream));
        else await fastEvents(stream);
      },
      { keepAlive: false, highWaterMark: HIGH_WATER_MARK, onSlowClient: policy },
    );
    let outcome: { result: FloodResult; growth: number } | undefined;
    await withServer(handler, async ({ url }) => {
      const slow = await rawRequest(url, '/slow');
      try {
        slow.pause();
        await within(slowStarted.promise, 5000, 'the slow stream to open');
        const fast = await openEvents(`${url}/fast`);
        const before = await settledMemory();
        go.resolve();

        const result = await within(flooded.promise, 20_000, 'the flood to finish');
        await fast.until(() => fast.events.length === FAST_EVENTS, 10_000, 'every event of the fast client');
        assert.deepEqual(
          fast.events.map((event) => event.data),
          Array.from({ length: FAST_EVENTS }, (_, n) => `fast ${n}`),
        );
        // Measured while the non-reading client is still connected: what it costs the server now.
        const growth = (await settledMemory()) - before;
        outcome = { result, growth };
      } finally {
        slow.destroy();
      }
    });
    assert.ok(outcome !== undefined);
    return outcome;
  }

  function describeFlood({ result, growth }: { result: FloodResult; growth: number }): string {
    return `${result.attempted} sends, ${result.dropped} dropped, at most ${result.maxBuffered} bytes unsent, memory +${formatMiB(growth)}`;
  }

  function assertBounded({ result, growth }: { result: FloodResult; growth: number }): void {
    // A burst is written whole up to the hard cap (maxBuffered); past it the policy applies, so
    // at most one event's worth above it waits.
    assert.ok(
      result.maxBuffered <= MAX_BUFFERED + 2 * KiB,
      `at most ${MAX_BUFFERED + 2 * KiB} unsent bytes held; saw ${result.maxBuffered}`,
    );
    assert.ok(growth < 16 * MiB, `memory grew by ${formatMiB(growth)} for a ${formatMiB(FLOOD_EVENTS * KiB)} flood`);
  }

  test('"drop": events are dropped and counted, memory stays bounded, others are served', async (t) => {
    const outcome = await floodNonReader('drop');
    t.diagnostic(describeFlood(outcome));
    const { result } = outcome;
    assert.equal(result.attempted, FLOOD_EVENTS, 'the writer got through every send');
    assert.ok(result.dropped > 0, 'some events were dropped');
    assert.ok(result.dropped < FLOOD_EVENTS, 'the first events went out');
    assert.equal(result.closed, false, '"drop" keeps the connection');
    assertBounded(outcome);
  });

  test('"close": the connection is destroyed, memory stays bounded, others are served', async (t) => {
    const outcome = await floodNonReader('close');
    t.diagnostic(describeFlood(outcome));
    const { result } = outcome;
    assert.ok(result.attempted < FLOOD_EVENTS, `the writer stopped early (after ${result.attempted} sends)`);
    assert.equal(result.closed, true);
    assert.equal(result.aborted, true);
    assert.equal(result.socketDestroyed, true, 'the server dropped the socket, discarding its unsent bytes');
    assert.equal(result.dropped, 0);
    assertBounded(outcome);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Connection churn

/** How many of each kind of resource keeps the event loop alive. */
function activeResources(): { timeouts: number; sockets: number } {
  const info = process.getActiveResourcesInfo();
  return {
    timeouts: info.filter((kind) => kind === 'Timeout').length,
    sockets: info.filter((kind) => kind === 'TCPSocketWrap').length,
  };
}

function connectionCount(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.getConnections((error, count) => (error ? reject(error) : resolve(count)));
  });
}

test('1,000 connect/disconnect cycles leave nothing behind', { timeout: 60_000 }, async (t) => {
  const CYCLES = 1000;
  const WARM_UP = 50;
  const KEEP_ALIVE = 1000;
  const deadline = Date.now() + 55_000;
  const heartbeat = sharedHeartbeat(KEEP_ALIVE);
  let writersEnded = 0;
  const handler = serveSse(
    async (_request, stream) => {
      await once(stream.signal, 'abort');
      writersEnded++;
    },
    { keepAlive: KEEP_ALIVE },
  );

  /** One client: open the stream, wait for its first bytes, vanish. */
  async function cycle(url: string, whileOpen?: () => void): Promise<void> {
    const res = await get(url, { accept: 'text/event-stream' });
    assert.equal(res.statusCode, 200);
    await once(res, 'data');
    whileOpen?.();
    res.socket.destroy();
  }

  await withServer(handler, async ({ url, server }) => {
    const settled = async (ended: number, what: string): Promise<void> => {
      let connections = -1;
      const deadlineMs = 10_000;
      const start = Date.now();
      while (Date.now() - start < deadlineMs) {
        connections = await connectionCount(server);
        if (connections === 0 && writersEnded === ended) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.fail(`${what}: ${connections} connections and ${writersEnded}/${ended} writers ended after ${deadlineMs} ms`);
    };

    // The first connections warm up lazily created state (parsers, compiled code) that would
    // otherwise count as growth.
    for (let n = 0; n < WARM_UP; n++) {
      await cycle(url, n === 0 ? () => assert.equal(heartbeat.size, 1, 'an open stream is on the shared heartbeat') : undefined);
    }
    await settled(WARM_UP, 'after the warm-up');
    const listeners = { request: server.listenerCount('request'), connection: server.listenerCount('connection') };
    const resources = activeResources();
    const memory = await settledMemory();

    const started = Date.now();
    for (let n = 0; n < CYCLES; n++) {
      if (Date.now() > deadline) assert.fail(`only ${n} of ${CYCLES} cycles before the deadline`);
      await cycle(url);
    }
    await settled(WARM_UP + CYCLES, 'after the cycles');

    assert.equal(heartbeat.size, 0, 'no stream is left on the shared heartbeat');
    assert.deepEqual(
      { request: server.listenerCount('request'), connection: server.listenerCount('connection') },
      listeners,
    );
    // Client sockets finish closing on a later turn than the server sees them go.
    await waitFor(() => {
      const now = activeResources();
      return now.timeouts <= resources.timeouts && now.sockets <= resources.sockets;
    }, 5000, `active resources back to ${JSON.stringify(resources)}; now ${JSON.stringify(activeResources())}`);
    const growth = (await settledMemory()) - memory;
    t.diagnostic(`${CYCLES} cycles in ${Date.now() - started} ms, memory +${formatMiB(growth)}`);
    assert.ok(growth < 4 * MiB, `memory grew by ${formatMiB(growth)} over ${CYCLES} cycles`);
  });
});
