// serve-sse's hub, as its README shows it: a connection subscribes to its `topic` query
// parameters (`/events?topic=bench`), and publish serialises each event once for everyone.
// keepAlive: false, like the other variants: no timer per connection.
// Imported from the built package (dist/), so this measures what users install.
import { createServer } from 'node:http';
import { createHub } from '../../dist/esm/index.js';
import { runServer } from './harness.mjs';

const hub = createHub();
const server = createServer(hub.handler({ keepAlive: false }));

function publish(n, data) {
  return hub.publish('bench', { event: 'bench', data });
}

/**
 * The replay storm's history, kept by the hub's default `history` (1,000 events). Each event's
 * data is its number in the seed, padded to `size` bytes; the client checks ids, not data.
 */
async function seed(groups) {
  const ids = [];
  for (const { topic, count, size } of groups) {
    for (let k = 0; k < count; k++) ids.push(await hub.publish(topic, { event: 'bench', data: String(ids.length + 1).padEnd(size, '.') }));
  }
  return ids;
}

runServer({ server, publish, connections: () => hub.stats().connections, stats: () => hub.stats(), seed });
