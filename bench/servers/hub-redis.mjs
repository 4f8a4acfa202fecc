// One instance of serve-sse's hub on the Redis backplane, for the redis section: the runner
// starts two of these on one stream (`node hub-redis.mjs <redis url> <stream key> [in flight]`),
// publishes on one and reads from the other. As in hub.mjs: keepAlive off, imported from dist/.
import { createServer } from 'node:http';
import { createHub } from '../../dist/esm/index.js';
import { redisBackplane } from '../../dist/esm/backplanes/redis.js';
import { runServer } from './harness.mjs';

const [url, key, inFlight = '1'] = process.argv.slice(2);
// The stream keeps 100,000 entries (the hub's history stays 1,000): flat out, a publisher can get
// more than 1,000 entries ahead of a reader the machine descheduled for a moment, and the stream
// would then be trimmed past what the reader had read (a gap the hub reports, and a reset).
// Deployments size maxLength for the longest lag they ride out; the bench rides out any.
const hub = createHub({ backplane: redisBackplane({ url, key, maxLength: 100_000 }) });
const server = createServer(hub.handler({ keepAlive: false }));

// With more than one in flight, the harness's next publish goes out before Redis has confirmed
// the last one (as from concurrent requests), until that many wait for Redis. A count and one
// waiter, not Promise.race over the pending set: that would add a reaction to each of them per
// publish, the bench's own cost counted as the hub's.
const limit = Number(inFlight);
let pending = 0;
let wake = null;
const settled = () => {
  pending--;
  if (wake !== null && pending < limit) {
    const resume = wake;
    wake = null;
    resume();
  }
};
async function publish(n, data) {
  const published = hub.publish('bench', { event: 'bench', data });
  if (limit <= 1) return published;
  pending++;
  published.then(settled, settled);
  if (pending >= limit) await new Promise((resolve) => (wake = resolve));
}

runServer({ server, publish, connections: () => hub.stats().connections, stats: () => hub.stats() });
