/**
 * serve-sse under Deno, for real: the built package (imported by its name, through the exports
 * map) served by Deno.serve and read from Node, and serve-sse/client running under Deno. Deno runs
 * offline: no remote imports, no lock file, node_modules as it is (see runtime.ts).
 *
 * The server tests run twice: with Deno's default, under which request.signal also aborts when a
 * response completes ("legacy abort"), and with --unstable-no-legacy-abort, the coming default,
 * under which it aborts only when the client goes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertBuilt, haveRuntime, runFixture, sseServer } from './runtime.js';
import { defineClientTest, defineServerTests, serverSuite } from './suite.js';

const LEGACY_NOTICE = /request\.signal aborts on successful responses \(legacy behavior\)/g;

const legacy = serverSuite('deno', 'deno-server.mjs');
defineServerTests('deno', legacy);
const fixed = serverSuite('deno', 'deno-server.mjs', ['--unstable-no-legacy-abort']);
defineServerTests('deno --unstable-no-legacy-abort', fixed);

// Deno prints a notice the first time a request whose signal was read completes (the library reads
// it to hear of clients leaving): once per process, not per stream; none with the new behaviour.
test("deno: Deno's legacy-abort notice comes once per process at most, and not with --unstable-no-legacy-abort", (t) => {
  if (!legacy.ready(t, "Deno's legacy-abort notice")) return;
  const notices = legacy.fixture()!.stderr().match(LEGACY_NOTICE)?.length ?? 0;
  assert.ok(notices <= 1, `${notices} notices`);
  assert.equal(fixed.fixture()!.stderr().match(LEGACY_NOTICE), null);
  t.diagnostic(`legacy-abort notices from the default run: ${notices}`);
});

defineClientTest('deno', legacy.runtime);

// Deno has Web Locks and BroadcastChannel, so serve-sse/client's sharing runs there as in a
// browser: two instances of one URL, one connection.
test('deno: two serve-sse/client instances of one URL share one connection', { timeout: 30_000 }, async (t) => {
  if (!haveRuntime(t, 'deno', legacy.runtime, 'serve-sse/client sharing')) return;
  assertBuilt();
  const { origin, responses: open } = await sseServer(t, (req, res) => {
    res.write('id: 1\ndata: one\n\n');
    setTimeout(() => res.write('id: 2\ndata: two\n\n'), 200);
  });
  const url = `${origin}/shared`;
  const run = await runFixture(legacy.runtime, 'client-shared.mjs', [url], 15_000);
  assert.equal(run.code, 0, `exited with ${run.code ?? run.signal}\n${run.stderr}`);
  const lines = run.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { source: string; data: string; lastEventId: string });
  for (const source of ['a', 'b']) {
    assert.deepEqual(
      lines.filter((line) => line.source === source).map(({ data, lastEventId }) => [data, lastEventId]),
      [['one', '1'], ['two', '2']],
      `instance ${source}`,
    );
  }
  assert.equal(open.length, 1, 'one connection for both instances');
});
