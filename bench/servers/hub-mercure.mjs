// serve-sse's hub behind its Mercure endpoint, for the Mercure section (bench/mercure.mjs):
// `createHub()` and `mercureHandler(hub, { publisherKey })` on node:http, imported from dist/ like
// the other variants, the handler at /.well-known/mercure as the hub server mounts it. Subscribers
// come with draft-07 `?topic=` selectors: an exact topic, or the URI template
// `https://example.com/bench/{id}`; both match the topic every event is published on.
//
// `node hub-mercure.mjs [--no-subscriptions]`. Active subscriptions are on by default, as the hub
// server runs them: each connection publishes a private subscription event when it opens (and one
// when it closes), which no bench client may see (anonymous: public updates only). They are
// published while clients connect, before the measured phase, but stay in the history (1,000
// events) until later publications evict them: the section's `mercure` row runs with
// `--no-subscriptions`, and `mercure, subscriptions on` without.
//
// Publishing in the measured phase is in-process (the harness calls `publish` below), as in
// servers/hub.mjs, so that what is measured is the fan-out through Mercure subscriptions, not HTTP
// publishing. Each event is published the way the endpoint's POST publishes a form's update: the
// topics as a list, the data, no type, and an id of Mercure's form (`urn:uuid:…`) chosen for it.
// The POST itself is measured too (the `mercure, HTTP POST` variant), against the same server: the
// publisher key lets a `{ mercure: { publish: ['*'] } }` token publish.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createHub } from '../../dist/esm/index.js';
import { mercureHandler } from '../../dist/esm/protocols/mercure/index.js';
import { MERCURE_PATH, PUBLISHER_KEY, TOPIC } from '../lib/mercure-topics.mjs';
import { runServer } from './harness.mjs';

const subscriptions = !process.argv.includes('--no-subscriptions');
const hub = createHub();
const mercure = mercureHandler(hub, { publisherKey: PUBLISHER_KEY, subscriptions, keepAlive: false });
const server = createServer((req, res) => {
  const path = req.url.split('?', 1)[0];
  if (path === MERCURE_PATH || path.startsWith(`${MERCURE_PATH}/`)) {
    mercure(req, res);
    return;
  }
  res.writeHead(404).end();
});

function publish(n, data) {
  return hub.publish([TOPIC], { data }, { id: `urn:uuid:${randomUUID()}` });
}

runServer({ server, publish, connections: () => hub.stats().connections, stats: () => hub.stats() });
