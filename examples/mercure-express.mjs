// Mercure inside an Express app: a hub's events served at /.well-known/mercure, so that any
// Mercure client (Symfony, API Platform, a plain EventSource) can subscribe, and publishers POST
// to it with a JWT signed with the publisher key. Run: MERCURE_PUBLISHER_KEY=... node examples/mercure-express.mjs
import express from 'express';
import { createHub } from 'serve-sse';
import { mercureHandler } from 'serve-sse/mercure';

const publisherKey = process.env.MERCURE_PUBLISHER_KEY ?? 'change-me-to-32-random-bytes-or-more!!';
const hub = createHub();
const app = express();
// One handler for both methods: GET subscribes (?topic=... or ?match=...), POST publishes.
app.use('/.well-known/mercure', mercureHandler(hub, { publisherKey }));
// The app may also publish in-process, with an id of its choosing (Mercure publishers choose theirs).
let n = 0;
setInterval(() => hub.publish('https://example.com/clock', { data: new Date().toISOString() }, { id: `urn:example:tick:${++n}` }), 1000).unref();

const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST, () => {
  const url = `http://${process.env.HOST ?? 'localhost'}:${server.address().port}/.well-known/mercure`;
  console.log(`listening on ${url}?topic=${encodeURIComponent('https://example.com/clock')}`);
});
