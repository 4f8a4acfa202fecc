// node:http2, through its compatibility API (request and response objects, as node:http). With
// TLS_KEY and TLS_CERT (PEM files) it serves HTTPS with HTTP/1.1 fallback, as browsers need; without,
// cleartext HTTP/2 (h2c), as behind a TLS-terminating proxy. Run: node examples/http2.mjs
import { readFileSync } from 'node:fs';
import { createSecureServer, createServer } from 'node:http2';
import { serveSse } from 'serve-sse';

const events = serveSse(async (request, stream) => {
  // One HTTP/2 connection carries many streams: the browser's six-per-origin limit is gone.
  await stream.send({ event: 'hello', data: { httpVersion: request.httpVersion } });
  await new Promise((resolve) => stream.signal.addEventListener('abort', resolve));
});

const { TLS_KEY, TLS_CERT } = process.env;
const server = TLS_KEY && TLS_CERT
  ? createSecureServer({ key: readFileSync(TLS_KEY), cert: readFileSync(TLS_CERT), allowHTTP1: true }, events)
  : createServer(events);

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST, () => {
  const scheme = TLS_KEY && TLS_CERT ? 'https' : 'http';
  console.log(`listening on ${scheme}://${process.env.HOST ?? 'localhost'}:${server.address().port}/events`);
});
