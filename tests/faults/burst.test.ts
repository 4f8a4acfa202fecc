/**
 * Issue 10, item 3: a burst is not a slow client. A client counts as slow only when it fails to
 * drain: over `highWaterMark` for `slowClientTimeout`, or past the hard cap `maxBuffered`. Both
 * sides of the rule: a client that reads gets any burst under the cap whole, with "close" and
 * "drop" alike; a client that reads nothing is cut (or, with "drop", costs no more) within the
 * timeout, or at the cap.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { createHub, serveSse, type ServeSseOptions, type SlowClientPolicy, type SseStream } from '../../src/index.js';
import { listen, openEvents, recordingLogger, responseEvents, waitFor, type Running } from '../helpers.js';
import { neverReads } from './clients.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const servers: Running[] = [];
const sockets: Socket[] = [];
after(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.map((server) => server.close()));
});

/** A writer that sends `count` events of `size` bytes in a loop, awaiting each send. */
function burst(count: number, size: number, options: ServeSseOptions): { url: Promise<string> } {
  const handler = serveSse(async (_request, stream) => {
    for (let n = 0; n < count && !stream.closed; n++) await stream.send({ id: n, data: `${n} `.padEnd(size, 'b') });
    await new Promise((resolve) => stream.signal.addEventListener('abort', resolve));
  }, { keepAlive: false, logger: recordingLogger().logger, ...options });
  return {
    url: listen(handler).then((running) => {
      servers.push(running);
      return running.url;
    }),
  };
}

describe('item 3: a client that reads gets a burst whole', () => {
  for (const onSlowClient of ['close', 'drop'] as const) {
    test(`40 × 16 KiB to a fetch client, "${onSlowClient}": 40 of 40`, async () => {
      const url = await burst(40, 16 * KiB, { onSlowClient }).url;
      const reader = responseEvents(await fetch(url, { headers: { accept: 'text/event-stream' } }));
      await reader.until(() => reader.events.length === 40, 10_000, 'every event of the burst');
      assert.deepEqual(reader.events.map((event) => event.id), Array.from({ length: 40 }, (_, n) => String(n)));
      reader.res.destroy();
    });

    test(`1 MiB (64 × 16 KiB) with the default limits, "${onSlowClient}": whole`, async () => {
      const url = await burst(64, 16 * KiB, { onSlowClient }).url;
      const reader = await openEvents(url);
      await reader.until(() => reader.events.length === 64, 10_000, 'every event of the burst');
      assert.equal(reader.events.at(-1)?.id, '63');
      reader.res.destroy();
    });
  }

  test('a hub publishing 40 × 16 KiB in one go to a fast client: all of them, nobody evicted', async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const running = await listen(hub.handler());
    servers.push(running);
    const reader = await openEvents(`${running.url}/?topic=t`);
    await waitFor(() => hub.stats().connections === 1);
    const data = 'h'.repeat(16 * KiB);
    await Promise.all(Array.from({ length: 40 }, () => hub.publish('t', { data })));
    await reader.until(() => reader.events.length === 40, 10_000, 'every event of the burst');
    assert.equal(hub.stats().evicted, 0);
    reader.res.destroy();
  });
});

interface Flood {
  /** ms from the first write that found the client over the mark until the stream closed. */
  overFor: number | undefined;
  maxBuffered: number;
  closed: boolean;
  dropped: number;
}

/**
 * A writer that sends 16 KiB every `every` ms (a tight loop when 0) to a client that reads
 * nothing, for at most `ms`; reports how long the client stayed over the mark before the cut.
 */
async function floodNonReader(policy: SlowClientPolicy, options: ServeSseOptions, every: number, ms: number): Promise<Flood> {
  const highWaterMark = options.highWaterMark ?? 64 * KiB;
  let report!: (flood: Flood) => void;
  const done = new Promise<Flood>((resolve) => (report = resolve));
  const handler = serveSse(
    async (request, stream: SseStream) => {
      const socket = (request as IncomingMessage).socket;
      const data = 'f'.repeat(16 * KiB);
      const stop = Date.now() + ms;
      let overSince: number | undefined;
      let maxBuffered = 0;
      for (let n = 0; !stream.closed && Date.now() < stop; n++) {
        await stream.send({ data });
        const buffered = socket.writableLength;
        maxBuffered = Math.max(maxBuffered, buffered);
        if (buffered > highWaterMark) overSince ??= Date.now();
        if (every > 0) await new Promise((resolve) => setTimeout(resolve, every));
        else if (n % 16 === 0) await nextTurn();
      }
      report({ overFor: overSince === undefined ? undefined : Date.now() - overSince, maxBuffered, closed: stream.closed, dropped: stream.dropped });
    },
    { keepAlive: false, logger: recordingLogger().logger, onSlowClient: policy, ...options },
  );
  const running = await listen(handler);
  servers.push(running);
  sockets.push(await neverReads(running.url, '/'));
  return done;
}

describe('item 3: a client that reads nothing', () => {
  test('"close": cut once it has been over the mark for slowClientTimeout, not before', async (t) => {
    const flood = await floodNonReader('close', { slowClientTimeout: 800, maxBuffered: 256 * MiB }, 20, 15_000);
    t.diagnostic(JSON.stringify(flood));
    assert.equal(flood.closed, true, 'cut');
    assert.ok(flood.overFor !== undefined && flood.overFor >= 700 && flood.overFor < 800 + 1000, `over the mark for ${flood.overFor} ms before the cut`);
  });

  test('"close": cut at the cap by a writer that never stops, well before the timeout', async (t) => {
    const cap = 1 * MiB;
    const started = Date.now();
    const flood = await floodNonReader('close', { slowClientTimeout: 60_000, maxBuffered: cap }, 0, 20_000);
    t.diagnostic(JSON.stringify(flood));
    assert.equal(flood.closed, true);
    assert.ok(Date.now() - started < 15_000, `cut after ${Date.now() - started} ms`);
    assert.ok(flood.maxBuffered <= cap + 17 * KiB, `at most the cap plus one event unsent; saw ${flood.maxBuffered}`);
  });

  test('"drop": after the timeout, events are dropped and the unsent bytes stop growing', async (t) => {
    const cap = 8 * MiB;
    const flood = await floodNonReader('drop', { slowClientTimeout: 500, maxBuffered: cap }, 5, 4000);
    t.diagnostic(JSON.stringify(flood));
    assert.equal(flood.closed, false, '"drop" keeps the connection');
    assert.ok(flood.dropped > 0, 'events were dropped');
    assert.ok(flood.maxBuffered <= cap + 17 * KiB, `bounded: ${flood.maxBuffered}`);
  });

  test('"wait": a client that never drains is cut after the timeout, and the waiting send settles', async (t) => {
    const flood = await floodNonReader('wait', { slowClientTimeout: 800 }, 0, 15_000);
    t.diagnostic(JSON.stringify(flood));
    assert.equal(flood.closed, true);
    assert.ok(flood.maxBuffered <= 64 * KiB + 17 * KiB, `"wait" never buffers more than the mark plus one event: ${flood.maxBuffered}`);
  });

  test('a client that pauses for less than the timeout, then reads, is never cut however much it has unread', async (t) => {
    // Bursts of 16 MiB, more than the kernel's buffers take (loopback ones grow to a few MiB), at a
    // client that stops reading for 300 ms at a time: megabytes wait in the server, and drain when
    // it reads again.
    let stop = false;
    let maxBuffered = 0;
    const handler = serveSse(
      async (request, stream) => {
        const socket = (request as IncomingMessage).socket;
        const data = 'p'.repeat(16 * KiB);
        while (!stop && !stream.closed) {
          for (let n = 0; n < 1024; n++) {
            await stream.send({ data });
            // After every send, not once a burst: the peak is mid-burst when the client reads during it.
            maxBuffered = Math.max(maxBuffered, socket.writableLength);
          }
          await new Promise((resolve) => setTimeout(resolve, 600));
        }
      },
      { keepAlive: false, onSlowClient: 'close', slowClientTimeout: 1500, maxBuffered: 64 * MiB, logger: recordingLogger().logger },
    );
    const running = await listen(handler);
    servers.push(running);
    const reader = await openEvents(running.url);
    for (let round = 0; round < 4; round++) {
      reader.res.pause();
      await new Promise((resolve) => setTimeout(resolve, 300));
      reader.res.resume();
      await new Promise((resolve) => setTimeout(resolve, 900));
    }
    stop = true;
    t.diagnostic(`${reader.events.length} events read, at most ${(maxBuffered / MiB).toFixed(1)} MiB unsent at once`);
    assert.equal(reader.ended, false, 'still connected');
    assert.ok(maxBuffered > 1 * MiB, 'megabytes waited for the client');
    reader.res.destroy();
  });

  test('bad limits are refused with a TypeError naming them', () => {
    assert.throws(() => serveSse(() => {}, { slowClientTimeout: -1 }), /slowClientTimeout/);
    assert.throws(() => serveSse(() => {}, { maxBuffered: 0 }), /maxBuffered/);
    assert.throws(() => serveSse(() => {}, { highWaterMark: 4 * MiB, maxBuffered: 1 * MiB }), /maxBuffered/);
    assert.throws(() => createHub({ slowClientTimeout: 1.5 }), /slowClientTimeout/);
  });
});
