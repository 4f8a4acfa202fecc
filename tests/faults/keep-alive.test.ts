/**
 * Issue 10, item 9: no stream is silent longer than `keepAlive` (plus the timer's own lateness),
 * still on one shared timer, still without comments on streams that are busy. A proxy with an
 * idle timeout of twice the interval must never see an idle stream.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, describe, test } from 'node:test';
import { serveSse, type SseStream } from '../../src/index.js';
import { sharedHeartbeat } from '../../src/heartbeat.js';
import { get, listen, type Running } from '../helpers.js';

const KEEP_ALIVE = 400;
/** What a loaded test machine may add to a timer: generous, and still far below the old 2×. */
const SLACK = 150;
const servers: Running[] = [];
after(() => Promise.all(servers.map((server) => server.close())));

/** Arrival times (ms) of every chunk of a response, for `ms`. */
function arrivals(res: IncomingMessage, ms: number): Promise<number[]> {
  const times: number[] = [];
  res.on('data', () => times.push(performance.now()));
  return new Promise((resolve) =>
    setTimeout(() => {
      res.destroy();
      resolve(times);
    }, ms),
  );
}

const longestSilence = (times: number[]): number => Math.max(...times.slice(1).map((time, n) => time - times[n]!));

describe('item 9: keep-alive', () => {
  test('streams that wrote at any point of a beat are never silent longer than keepAlive', async (t) => {
    // Each stream writes one event at its own offset into the heartbeat's period, then nothing:
    // the worst case of the old rule was a write just after a beat.
    const handler = serveSse(
      async (request, stream: SseStream) => {
        const offset = Number(new URL(request.url ?? '/', 'http://x').searchParams.get('offset'));
        await new Promise((resolve) => setTimeout(resolve, offset));
        await stream.send({ data: 'once' });
        await new Promise((resolve) => stream.signal.addEventListener('abort', resolve));
      },
      { keepAlive: KEEP_ALIVE },
    );
    const running = await listen(handler);
    servers.push(running);
    const offsets = Array.from({ length: 16 }, (_, n) => Math.round((n * KEEP_ALIVE) / 16));
    const responses = await Promise.all(offsets.map((offset) => get(`${running.url}/?offset=${offset}`, { accept: 'text/event-stream' })));
    const times = await Promise.all(responses.map((res) => arrivals(res, 8 * KEEP_ALIVE)));
    const silences = times.map(longestSilence);
    t.diagnostic(`longest silences (ms): ${silences.map((s) => s.toFixed(0)).join(', ')}`);
    for (const silence of silences) assert.ok(silence <= KEEP_ALIVE + SLACK, `a stream was silent for ${silence.toFixed(0)} ms (keepAlive ${KEEP_ALIVE})`);
    assert.ok(sharedHeartbeat(KEEP_ALIVE).size <= 16, 'one shared timer holds the streams');
  });

  test('the same through handler.fetch (a web ReadableStream)', async (t) => {
    const handler = serveSse(
      async (_request, stream) => {
        await new Promise((resolve) => setTimeout(resolve, KEEP_ALIVE / 8));
        await stream.send({ data: 'once' });
        await new Promise((resolve) => stream.signal.addEventListener('abort', resolve));
      },
      { keepAlive: KEEP_ALIVE },
    );
    const response = await handler.fetch(new Request('http://x/', { headers: { accept: 'text/event-stream' } }));
    const reader = response.body!.getReader();
    const times: number[] = [];
    const stop = performance.now() + 8 * KEEP_ALIVE;
    while (performance.now() < stop) {
      const { done } = await reader.read();
      if (done) break;
      times.push(performance.now());
    }
    await reader.cancel();
    const silence = longestSilence(times);
    t.diagnostic(`longest silence ${silence.toFixed(0)} ms`);
    assert.ok(silence <= KEEP_ALIVE + SLACK, `silent for ${silence.toFixed(0)} ms`);
  });

  test('a stream that writes more often than three quarters of keepAlive gets no comment', async () => {
    const handler = serveSse(
      async (_request, stream) => {
        while (!stream.closed) {
          await stream.send({ data: 'busy' });
          await new Promise((resolve) => setTimeout(resolve, KEEP_ALIVE / 2));
        }
      },
      { keepAlive: KEEP_ALIVE },
    );
    const running = await listen(handler);
    servers.push(running);
    const res = await get(running.url, { accept: 'text/event-stream' });
    let body = '';
    res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    await new Promise((resolve) => setTimeout(resolve, 6 * KEEP_ALIVE));
    res.destroy();
    // The opening comment, then events only.
    assert.equal(body.split('\n').filter((line) => line.startsWith(':')).length, 1, body.slice(0, 300));
    assert.ok(body.split('data: busy').length > 6);
  });
});
