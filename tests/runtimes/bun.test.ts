/**
 * serve-sse under Bun, for real: the built package (imported by its name, through the exports
 * map) served by Bun.serve and read from Node, and serve-sse/client running under Bun; plus Bun's
 * 10 s idle timeout against the library's keep-alive.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fetchJson, openStream, poll } from './runtime.js';
import { defineClientTest, defineServerTests, serverSuite } from './suite.js';

const suite = serverSuite('bun', 'bun-server.mjs');
defineServerTests('bun', suite);
defineClientTest('bun', suite.runtime);

// One ~12 s test, three streams side by side, under Bun.serve's default idleTimeout (10 s):
// - the hub's handler with keepAlive 4000: a comment every 4 s keeps it open, no server.timeout;
// - serveSse with the default keepAlive (15 s) and no server.timeout: Bun cuts it at 8-12 s, which
//   is what docs/frameworks.md warns of (and the library hears of it: stream.signal aborts);
// - the same with server.timeout(request, 0), as the docs advise: open past 10 s.
test("bun: Bun's 10 s idle timeout: a keep-alive below it keeps a stream open; the 15 s default is cut unless server.timeout(req, 0)", { timeout: 30_000 }, async (t) => {
  if (!suite.ready(t, "Bun's idle timeout against keep-alive")) return;
  const { url } = suite.fixture()!;
  const opened = performance.now();
  const [kept, cut, lifted] = await Promise.all([
    openStream(`${url}/hub?topic=idle`),
    openStream(`${url}/watched?name=idle-default`),
    openStream(`${url}/watched?name=idle-lifted&lift=1`),
  ]);
  t.after(() => [kept, cut, lifted].forEach((reader) => reader.leave()));
  const HOLD = 12_000;
  // Bun's idle timer runs in 4 s steps: an idle connection goes 8 to 12 s after its last byte
  // (measured: 8.6 to 12.2 s). Bounded: the wait ends once 12 s have passed and the idle stream
  // was cut, at 14 s at the latest, or as soon as a stream that should stay open ends.
  await kept.until(() => kept.ended || lifted.ended || (performance.now() - opened >= HOLD && cut.ended), 14_000, '12 s to pass and the idle stream to be cut').catch(() => {});
  const at = (time: number | undefined): number => Math.round((time ?? Number.NaN) - opened);
  const elapsed = at(performance.now());

  assert.equal(kept.ended, false, `the keepAlive 4000 stream was cut at ${at(kept.endedAt)} ms`);
  // The opening comment, then keep-alive comments at most 4 s apart (plus the shared timer's lateness).
  const beats = kept.comments.slice(1).map((comment) => at(comment.at));
  assert.ok(beats.length >= 2, `keep-alive comments at ${beats.join(', ')} ms`);
  assert.ok(beats[0]! <= 5000, `first keep-alive comment at ${beats[0]} ms`);
  assert.equal(lifted.ended, false, `the server.timeout(req, 0) stream was cut at ${at(lifted.endedAt)} ms`);
  assert.equal(lifted.comments.length, 1, 'no keep-alive comment yet from the 15 s default');
  assert.ok(elapsed >= HOLD, `waited ${elapsed} ms`);

  assert.equal(cut.ended, true, 'Bun cut the idle stream without server.timeout(req, 0) (default keepAlive 15 s)');
  assert.equal(cut.complete, false, 'cut, not ended cleanly');
  const cutAt = at(cut.endedAt);
  assert.ok(cutAt >= 7500 && cutAt <= 13_000, `Bun cut it at ${cutAt} ms; its idleTimeout is 10 s, in 4 s steps`);
  type Status = Record<string, { abortedAt: number | null } | undefined>;
  // The library heard of Bun's cut: stream.signal aborted.
  const status = await poll(async () => {
    const all = await fetchJson<Status>(`${url}/status`);
    return all['idle-default']?.abortedAt === null ? undefined : all;
  }, 2000, 'stream.signal to abort after Bun cut the connection');
  assert.equal(status['idle-lifted']?.abortedAt, null);
  t.diagnostic(`keepAlive 4000: comments at ${beats.join(', ')} ms, open at ${elapsed} ms; default keepAlive, no server.timeout: cut at ${cutAt} ms; with server.timeout(req, 0): open at ${elapsed} ms`);
});
