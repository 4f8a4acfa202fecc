// A `tick` event every second on a plain node:http server. Run: node examples/node-http.mjs
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { serveSse } from 'serve-sse';

const ticks = serveSse(async (_request, stream) => {
  // A reconnecting client sends the last id it saw (Last-Event-ID): carry on from there.
  let count = Number(stream.lastEventId) || 0;
  while (!stream.closed) {
    // Rejects as soon as the client leaves, which ends this writer quietly.
    await sleep(1000, undefined, { signal: stream.signal });
    count += 1;
    await stream.send({ event: 'tick', id: count, data: { count } });
  }
});

const server = createServer((req, res) => {
  if (req.url?.split('?')[0] === '/events') return ticks(req, res);
  res.writeHead(404, { 'content-type': 'text/plain' }).end('Try /events\n');
});

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST, () => {
  const { port } = server.address();
  console.log(`listening on http://${process.env.HOST ?? 'localhost'}:${port}/events`);
});
