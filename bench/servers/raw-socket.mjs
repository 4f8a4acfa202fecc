// "The floor" for the paced rows: node:http accepts the request and writes the head, and from
// then on each event goes straight to the socket. The event is serialised once and framed once
// (one Buffer holding the HTTP chunk framing, `<hex length>\r\n<event>\r\n`, as the head's
// `Transfer-Encoding: chunked` requires), and the same Buffer is written to every client's
// `res.socket`: per client, nothing but a bare `socket.write`. `raw` (raw.mjs) goes through
// `res.write`, which frames each chunk again for every response; the hub writes pre-framed
// batches to the socket, which is this, plus whatever it does per client and per event.
import { createServer } from 'node:http';
import { runServer } from './harness.mjs';

const sockets = [];

const server = createServer((req, res) => {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  });
  res.flushHeaders(); // the head leaves now, through node:http; the body bypasses it
  const { socket } = res;
  if (socket === null) return;
  socket.on('error', () => {}); // a client that vanished mid-write is not an error here
  sockets.push(socket);
  socket.on('close', () => {
    // Swap-remove: O(1) once found, and order does not matter for a broadcast.
    const i = sockets.indexOf(socket);
    if (i !== -1) {
      sockets[i] = sockets[sockets.length - 1];
      sockets.pop();
    }
  });
});

function publish(n, data) {
  const event = Buffer.from(`id: ${n}\nevent: bench\ndata: ${data}\n\n`);
  const chunk = Buffer.concat([Buffer.from(`${event.length.toString(16)}\r\n`), event, Buffer.from('\r\n')]);
  for (const socket of sockets) socket.write(chunk);
}

runServer({ server, publish, connections: () => sockets.length });
