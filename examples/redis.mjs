// One instance of a hub that many share through Redis. Start two behind a load balancer:
//   PORT=3001 node examples/redis.mjs & PORT=3002 node examples/redis.mjs
// Each publishes a tick every second; a client of either sees the ticks of both, in one order,
// and may reconnect to either one and resume where it stopped.
import { createServer } from 'node:http';
import { createHub } from 'serve-sse';
import { redisBackplane } from 'serve-sse/redis';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const hub = createHub({ backplane: redisBackplane({ url, key: process.env.STREAM_KEY ?? 'serve-sse-example' }) });
const events = hub.handler(); // /events?topic=ticks
const server = createServer((req, res) => (req.url?.startsWith('/events') ? events(req, res) : res.writeHead(404).end()));

let n = 0;
const ticks = setInterval(() => {
  // Rejects while Redis is away: this tick is not published, and the next one will try again.
  hub.publish('ticks', { event: 'tick', data: { from: process.pid, n: ++n } }).catch((error) => console.error(error.message));
}, 1000);

process.once('SIGTERM', async () => {
  clearInterval(ticks);
  server.close();
  await hub.close({ retry: 1000 }); // clients come back within a second, to another instance
  server.closeAllConnections();
});

server.listen(Number(process.env.PORT ?? 3001), process.env.HOST, () => {
  console.log(`listening on http://${process.env.HOST ?? 'localhost'}:${server.address().port}/events?topic=ticks`);
});
