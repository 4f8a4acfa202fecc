// better-sse as its README suggests for a broadcast: one session per request, all registered on
// one channel; publishing is channel.broadcast. Its defaults are kept (JSON serialiser, so the
// 64-byte string goes out as 66 bytes with its quotes), except what would make the comparison
// unfair: no keep-alive timer (the hub variant runs with keepAlive: false too), no initial
// `retry:` write, and the event id is the same counter the other variants send (instead of a
// random UUID, which would make every event 30 bytes heavier on the wire).
import { createServer } from 'node:http';
import { createChannel, createSession } from 'better-sse';
import { runServer } from './harness.mjs';

const channel = createChannel();

const server = createServer(async (req, res) => {
  try {
    const session = await createSession(req, res, { keepAlive: null, retry: null });
    channel.register(session);
  } catch {
    res.destroy(); // the client left before the session connected
  }
});

function publish(n, data) {
  channel.broadcast(data, 'bench', { eventId: String(n) });
}

runServer({ server, publish, connections: () => channel.sessionCount });
