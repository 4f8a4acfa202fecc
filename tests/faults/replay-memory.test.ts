/**
 * Issue 10, item 1: a replay must not pin memory. Clients that resume from the oldest id of a
 * big history and then never read: their replay shares the history's bytes (no copy per
 * client), and each is cut like any other slow client. The hub runs in a child process, so
 * that its memory is measured alone (RSS, and heap + external after full collections).
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { waitFor } from '../helpers.js';
import { neverReads } from './clients.js';
import { startHubProcess, type HubProcess, type HubProcessConfig } from './hub-process.js';

const MiB = 1024 * 1024;
const EVENTS = 1000;
const EVENT_SIZE = 16 * 1024;
const CLIENTS = 60;
/** Short, so that the test sees the cut; the rule is the same at the default 10 s. */
const SLOW_CLIENT_TIMEOUT = 3000;

const processes: HubProcess[] = [];
const sockets: Socket[] = [];
after(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(processes.map((hub) => hub.stop()));
});

const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

async function replayToNonReaders(config: HubProcessConfig, path: string): Promise<string> {
  const hub = await startHubProcess(config);
  processes.push(hub);
  const ids = await hub.publish('quiet', EVENTS, EVENT_SIZE);
  const before = await hub.memory();
  for (let n = 0; n < CLIENTS; n++) sockets.push(await neverReads(hub.url, path, { 'Last-Event-ID': ids[0]! }));
  // On a loaded machine the first may be cut before the last has connected: they count as served.
  await waitFor(async () => {
    const { connections, evicted } = await hub.stats();
    return Number(connections) + Number(evicted) === CLIENTS;
  }, 20_000, 'every client to subscribe');
  const connected = (await hub.stats()).connections;
  // Measured while the clients are connected and owed most of a 16 MiB replay each.
  const held = await hub.memory();
  const heapGrowth = held.heap - before.heap;
  const rssGrowth = held.rss - before.rss;
  const figures = `${String(connected)} clients connected, owed ${mib(EVENTS * EVENT_SIZE)} each: heap+external +${mib(heapGrowth)}, RSS +${mib(rssGrowth)}`;
  // One copy per client would be 60 × 16 MiB; shared with the history, it is next to nothing.
  assert.ok(heapGrowth < 64 * MiB, `replays are shared with the history, not copied: ${figures}`);
  assert.ok(rssGrowth < 128 * MiB, `RSS: ${figures}`);
  const started = Date.now();
  let stats = await hub.stats();
  while (stats.connections !== 0 && Date.now() - started < SLOW_CLIENT_TIMEOUT + 5000) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    stats = await hub.stats();
  }
  assert.equal(stats.connections, 0, `every non-reading client is cut; ${String(stats.connections)} left after ${Date.now() - started} ms`);
  assert.equal(stats.evicted, CLIENTS);
  return `${figures}; all cut within ${Date.now() - started} ms of the measurement`;
}

describe('item 1: a replay to a client that never reads', () => {
  test('library hub: shared with the history, and the client is cut like any slow client', async (t) => {
    const figures = await replayToNonReaders(
      { kind: 'library', options: { history: EVENTS, slowClientTimeout: SLOW_CLIENT_TIMEOUT } },
      '/?topic=quiet',
    );
    t.diagnostic(figures);
  });

  test('hub server: the same through /events', async (t) => {
    const figures = await replayToNonReaders(
      { kind: 'server', options: { history: EVENTS, maxConnectionsPerIp: 0, slowClientTimeout: SLOW_CLIENT_TIMEOUT } },
      '/events?topic=quiet',
    );
    t.diagnostic(figures);
  });
});
