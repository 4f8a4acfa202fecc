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

runServer({ server, publish, connections: () => hub.stats().connections, stats: () => hub.stats() });
