/**
 * A worker of tests/backplanes/cluster.test.ts: a library hub on `clusterBackplane()`, served on a
 * port of its own (not the cluster's shared one), so that the test picks the worker it talks to.
 * `GET /events?topic=t`, `POST /publish?topic=t&data=d[&alias=a]` (answers the id), `POST /lag?on=1|0`
 * (holds the log's messages back, as a worker that is behind the log, then lets them through in
 * order), `GET /stats`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

// Lag: the log's messages wait while `lagging`, as they would behind a busy event loop.
let lagging = false;
const held: Array<() => void> = [];
const on = process.on.bind(process);
process.on = ((event: string, listener: (...args: unknown[]) => void) =>
  event === 'message'
    ? on('message', (message: unknown) => {
        const isLog = (message as { serveSse?: string } | null)?.serveSse === 'log';
        if (lagging && isLog) held.push(() => listener(message));
        else listener(message);
      })
    : on(event as 'exit', listener)) as typeof process.on;

const { createHub } = await import('../../src/index.js');
const { clusterBackplane } = await import('../../src/backplanes/cluster.js');
const hub = createHub({ history: Number(process.env.HISTORY ?? 20), backplane: clusterBackplane(), logger: { error() {}, warn() {}, info() {}, debug() {} } });
const events = hub.handler({ topics: (request) => new URL(request.url ?? '/', 'http://x').searchParams.getAll('topic') });

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const reply = (status: number, body: string): void => void res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
  switch (url.pathname) {
    case '/events':
      return events(req, res);
    case '/publish': {
      const alias = url.searchParams.get('alias');
      hub.publish(url.searchParams.get('topic')!, { data: url.searchParams.get('data') }, alias === null ? {} : { id: alias }).then(
        (id) => reply(200, id),
        (error: Error) => reply(503, error.message),
      );
      return;
    }
    case '/lag':
      lagging = url.searchParams.get('on') === '1';
      if (!lagging) for (const deliver of held.splice(0)) deliver();
      return reply(200, String(held.length));
    case '/stats':
      return reply(200, JSON.stringify(hub.stats()));
    default:
      return reply(404, 'no');
  }
});
// Exclusive: this worker's own port, not one shared through the primary.
server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
  process.send!({ test: 'listening', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
});
process.on('disconnect', () => process.exit(0));
