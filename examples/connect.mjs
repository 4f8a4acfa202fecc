// Connect, with a page on another origin allowed to listen (cookies included):
//   new EventSource('http://localhost:3000/updates', { withCredentials: true })
// Run: ORIGIN=http://localhost:5173 node examples/connect.mjs
import { createServer } from 'node:http';
import connect from 'connect';
import { createHub } from 'serve-sse';

const hub = createHub();
const app = connect();
app.use(
  '/updates',
  hub.handler({
    cors: { origin: process.env.ORIGIN ?? 'http://localhost:5173', credentials: true },
    topics: () => ['updates'],
  }),
);

let version = 0;
setInterval(() => hub.publish('updates', { event: 'update', data: { version: ++version } }), 1000).unref();

const server = createServer(app).listen(Number(process.env.PORT ?? 3000), process.env.HOST, () => {
  console.log(`listening on http://${process.env.HOST ?? 'localhost'}:${server.address().port}/updates`);
});
