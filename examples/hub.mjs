// A hub: clients subscribe to topics at /events?topic=..., the app publishes, and SIGTERM shuts
// down cleanly even with streams open (clients are told to come back in 5 s).
import { createServer } from 'node:http';
import { createHub } from 'serve-sse';

const hub = createHub({ history: 1000 });
const events = hub.handler(); // topics from ?topic=a&topic=b; none answers 204
const server = createServer((req, res) => (req.url?.startsWith('/events') ? events(req, res) : res.writeHead(404).end()));

// Something to watch: the time, every second, on the "clock" topic.
const clock = setInterval(() => hub.publish('clock', { event: 'time', data: new Date().toISOString() }), 1000);

process.once('SIGTERM', async () => {
  clearInterval(clock);
  server.close(); // stop accepting; it finishes once the streams below are gone
  await hub.close({ retry: 5000 }); // tell clients when to come back, end every stream
});

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST, () => {
  console.log(`listening on http://${process.env.HOST ?? 'localhost'}:${server.address().port}/events?topic=clock`);
});
