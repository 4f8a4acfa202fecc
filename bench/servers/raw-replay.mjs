// "The limit" for the replay storm: plain node:http, no library, with the least a replay can be.
// Every event is framed once to a Buffer and kept in a ring of the last 1,000 (the hub's default
// history); a request with a `Last-Event-ID` found in the ring gets the newer events of its
// topic, each the same Buffer as in the ring, one `res.write` each (corked, so one system call):
// no copy per client, nothing per client but the writes. It is also what a hand-rolled replay usually is: no slow-client
// rule, so a client that never reads holds its whole replay queued in the server (references to
// the ring's Buffers, not copies) until it goes, and nothing is ever disconnected.
//
// Events published while clients are connected also go to them live, the same Buffer to each
// client of the topic, one `res.write` each, as in raw.mjs: a client that comes back is replayed
// and joins the live clients in the same turn, so that it misses nothing in between (the
// reconnect storm checks that it gets the event after its replay). In the replay storms every
// event is published before anyone connects.
//
// Only the replay and reconnect storms use this server (the fan-out baseline stays
// bench/servers/raw.mjs, untouched by a ring).
import { createServer } from 'node:http';
import { runServer } from './harness.mjs';

const CAPACITY = 1_000;
const ring = []; // { n, topic, buf }, oldest first
const byId = new Map(); // id -> ring entry
const clients = new Map(); // res -> its topic

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const topic = url.searchParams.get('topic') ?? 'bench';
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  });
  res.flushHeaders();
  res.on('error', () => {});
  clients.set(res, topic);
  res.on('close', () => clients.delete(res));
  const from = byId.get(req.headers['last-event-id']);
  if (from !== undefined) {
    // Corked: the replay leaves in one writev, as the hub's does in one write.
    res.cork();
    for (let i = from.n - ring[0].n + 1; i < ring.length; i++) {
      if (ring[i].topic === topic) res.write(ring[i].buf);
    }
    res.uncork();
  }
});

function add(topic, data) {
  const n = (ring.at(-1)?.n ?? 0) + 1;
  const entry = { n, topic, buf: Buffer.from(`id: ${n}\nevent: bench\ndata: ${data}\n\n`) };
  ring.push(entry);
  byId.set(String(n), entry);
  if (ring.length > CAPACITY) byId.delete(String(ring.shift().n));
  for (const [res, of] of clients) if (of === topic) res.write(entry.buf);
  return String(n);
}

async function seed(groups) {
  const ids = [];
  for (const { topic, count, size } of groups) {
    for (let k = 0; k < count; k++) ids.push(add(topic, String(ids.length + 1).padEnd(size, '.')));
  }
  return ids;
}

runServer({
  server,
  publish: (n, data) => add('bench', data),
  connections: () => clients.size,
  seed,
});
