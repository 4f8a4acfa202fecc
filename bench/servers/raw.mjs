// "The limit": plain node:http, no library. Each event is serialised once to a Buffer and the
// same Buffer is written to every response: nothing per client but the write itself.
import { createServer } from 'node:http';
import { runServer } from './harness.mjs';

const clients = [];

const server = createServer((req, res) => {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  });
  res.flushHeaders(); // the client counts itself connected once it has the head
  res.on('error', () => {}); // a client that vanished mid-write is not an error here
  clients.push(res);
  res.on('close', () => {
    // Swap-remove: O(1) once found, and order does not matter for a broadcast.
    const i = clients.indexOf(res);
    if (i !== -1) {
      clients[i] = clients[clients.length - 1];
      clients.pop();
    }
  });
});

function publish(n, data) {
  const buf = Buffer.from(`id: ${n}\nevent: bench\ndata: ${data}\n\n`);
  for (const res of clients) res.write(buf);
}

runServer({ server, publish, connections: () => clients.length });
