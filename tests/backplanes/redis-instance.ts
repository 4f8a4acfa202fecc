/**
 * One instance of a hub on the Redis backplane, in a process of its own, for the cross-process
 * test: `GET /events?topic=...` subscribes, `POST /publish?topic=...` publishes its body as data
 * and answers with the id, `GET /stats` is `hub.stats()`. Reports its url over IPC; ends when its parent disconnects.
 * Env: REDIS_URL, KEY, and optionally HISTORY (the hub's `history`, which is also the stream's
 * `maxLength`).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHub } from '../../src/index.js';
import { redisBackplane } from '../../src/backplanes/redis.js';

const history = process.env.HISTORY === undefined ? undefined : Number(process.env.HISTORY);
const hub = createHub({ history, backplane: redisBackplane({ url: process.env.REDIS_URL!, key: process.env.KEY! }) });
const events = hub.handler();

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method === 'POST' && url.pathname === '/publish') {
    let data = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (data += chunk));
    req.on('end', () => {
      hub.publish(url.searchParams.getAll('topic'), { data }).then(
        (id) => res.end(id),
        (error: Error) => res.writeHead(503).end(error.message),
      );
    });
  } else if (url.pathname === '/stats') {
    res.setHeader('content-type', 'application/json').end(JSON.stringify(hub.stats()));
  } else if (url.pathname === '/events') {
    events(req, res);
  } else {
    res.writeHead(404).end();
  }
});

server.listen(0, '127.0.0.1', () => {
  process.send!({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
});

process.on('disconnect', () => {
  server.close();
  void hub.close({ timeout: 500 }).then(() => process.exit(0));
});
