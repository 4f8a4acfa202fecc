// serve-sse/client in a page: open it in several tabs and the server still sees one connection;
// close the tab that holds it and another takes over where it was; the token travels in a
// header, and a fresh one is asked for when the server says 401.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHub } from 'serve-sse';

// The client's modules, as the package ships them, served to the page.
const clientDir = dirname(fileURLToPath(import.meta.resolve('serve-sse/client')));
const page = readFileSync(new URL('./client.html', import.meta.url));

/** @typedef {{ price: { symbol: string, cents: number } }} Events */
/** @type {import('serve-sse').TypedHub<Events>} */
const hub = createHub({ json: true });
const events = hub.handler({
  topics: () => ['prices'],
  // A real app checks a signed token; this one accepts tokens it handed out in the last minute.
  onConnect: (req) => (valid(req.headers.authorization) ? { status: 200 } : { status: 401 }),
});

const issued = new Map();
function valid(authorization) {
  const issuedAt = issued.get(authorization?.replace(/^Bearer /, ''));
  return issuedAt !== undefined && Date.now() - issuedAt < 60_000;
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/') return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
  if (path === '/token') {
    const token = Math.random().toString(36).slice(2);
    issued.set(token, Date.now());
    return void res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
  }
  if (path === '/events') return events(req, res);
  if (path === '/stats') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(hub.stats()));
  if (path.startsWith('/client/') && /^[\w-]+\.js$/.test(path.slice('/client/'.length))) {
    return void res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(join(clientDir, path.slice('/client/'.length))));
  }
  res.writeHead(404).end();
});

let cents = 10_000;
const ticker = setInterval(() => {
  cents += Math.round((Math.random() - 0.5) * 100);
  void hub.publish('prices', { event: 'price', data: { symbol: 'SSE', cents } });
}, 500);

process.once('SIGTERM', async () => {
  clearInterval(ticker);
  server.close();
  await hub.close({ retry: 2000 });
});

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST, () => {
  console.log(`listening on http://${process.env.HOST ?? 'localhost'}:${server.address().port}/`);
});
