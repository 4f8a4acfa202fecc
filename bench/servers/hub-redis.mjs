// One instance of serve-sse's hub on the Redis backplane, for the redis section: the runner
// starts two of these on one stream (`node hub-redis.mjs <redis url> <stream key> [in flight]`),
// publishes on one and reads from the other. As in hub.mjs: keepAlive off, imported from dist/.
import { createServer } from 'node:http';
import { createHub } from '../../dist/esm/index.js';
import { redisBackplane } from '../../dist/esm/backplanes/redis.js';
import { runServer } from './harness.mjs';

const [url, key, inFlight = '1'] = process.argv.slice(2);
const hub = createHub({ backplane: redisBackplane({ url, key }) });
const server = createServer(hub.handler({ keepAlive: false }));

// With more than one in flight, the harness's next publish goes out before Redis has confirmed
// the last one (as from concurrent requests), until that many wait for Redis.
const limit = Number(inFlight);
const pending = new Set();
async function publish(n, data) {
  const published = hub.publish('bench', { event: 'bench', data });
  if (limit <= 1) return published;
  pending.add(published);
  published.then(
    () => pending.delete(published),
    () => pending.delete(published),
  );
  if (pending.size >= limit) await Promise.race(pending);
}

runServer({ server, publish, connections: () => hub.stats().connections, stats: () => hub.stats() });
