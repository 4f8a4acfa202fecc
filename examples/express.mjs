// Express 5 (or 4): a hub's handler is ordinary middleware, here behind compression(), which the
// stream's `Cache-Control: no-transform` keeps out of its way. Run: node examples/express.mjs
import compression from 'compression';
import express from 'express';
import { createHub } from 'serve-sse';

const hub = createHub();
const app = express();
app.use(compression());
// Mounted at a path: /events?topic=clock subscribes to the "clock" topic.
app.use('/events', hub.handler());
app.get('/', (_req, res) => res.send('Subscribe at /events?topic=clock'));

setInterval(() => hub.publish('clock', { event: 'time', data: new Date().toISOString() }), 1000).unref();

const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST, () => {
  console.log(`listening on http://${process.env.HOST ?? 'localhost'}:${server.address().port}/events?topic=clock`);
});
