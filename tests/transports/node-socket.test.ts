/**
 * The node:http connection path where serve-sse writes to the socket itself: the head and the
 * first bytes leave in one write, and a client that closes its side ends the connection at once,
 * without an ECONNRESET error for the request, and without touching a response that came after
 * the stream on the same kept-alive socket.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { serveSse, type SseStream } from '../../src/index.js';
import { EventReader, holdingWriter, listen, waitFor, type Running } from '../helpers.js';

const servers: Running[] = [];
after(() => Promise.all(servers.map((server) => server.close())));

/**
 * Counts the parts each server socket is handed to write: a corked writev of two parts (the head,
 * then the opening) counts 2, one string holding both counts 1.
 */
function countSocketWrites(running: Running): Map<Socket, number> {
  const parts = new Map<Socket, number>();
  running.server.on('connection', (socket: Socket) => {
    parts.set(socket, 0);
    const counted = socket as Socket & { _write: (...args: unknown[]) => void; _writev: (chunks: unknown[], ...rest: unknown[]) => void };
    const write = counted._write;
    const writev = counted._writev;
    counted._write = function (this: Socket, ...args: unknown[]) {
      parts.set(socket, parts.get(socket)! + 1);
      return write.apply(this, args);
    };
    counted._writev = function (this: Socket, chunks: unknown[], ...rest: unknown[]) {
      parts.set(socket, parts.get(socket)! + chunks.length);
      return writev.call(this, chunks, ...rest);
    };
  });
  return parts;
}

function openRaw(url: string, path = '/'): Promise<{ socket: Socket; text: () => string }> {
  const { hostname, port } = new URL(url);
  const socket = netConnect(Number(port), hostname);
  let received = '';
  socket.setEncoding('latin1').on('data', (chunk: string) => (received += chunk));
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nAccept: text/event-stream\r\n\r\n`);
  return Promise.resolve({ socket, text: () => received });
}

describe('node:http: the socket path', () => {
  for (const retry of [undefined, 2500]) {
    test(`the head and the opening bytes leave in one write (retry ${String(retry)}), read by node:http and eventsource-parser`, async () => {
      const { writer, streams } = holdingWriter();
      const running = await listen(serveSse(writer, { keepAlive: false, retry }));
      servers.push(running);
      const writes = countSocketWrites(running);
      const res = await new Promise<IncomingMessage>((resolve, reject) =>
        httpRequest(running.url, { agent: false, headers: { accept: 'text/event-stream' } }, resolve).on('error', reject).end(),
      );
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
      assert.equal(res.headers['transfer-encoding'], 'chunked');
      const reader = new EventReader(res);
      await waitFor(() => streams.length === 1);
      if (retry === undefined) await reader.until(() => reader.comments.length === 1, 5000, 'the opening comment');
      else await reader.until(() => reader.retry === retry, 5000, 'the retry hint');
      assert.deepEqual([...writes.values()], [1], 'the head and the opening as one part of one write');
      // What follows goes to the same socket, framed, and reads as events.
      await streams[0]!.send({ id: 7, data: 'after the opening' });
      await reader.until(() => reader.events.length === 1, 5000, 'the event');
      assert.deepEqual(reader.events.map(({ id, data }) => ({ id, data })), [{ id: '7', data: 'after the opening' }]);
      res.destroy();
    });
  }

  test('a client that closes its side: the connection ends at once, the request closes without an error', async () => {
    const requestErrors: Error[] = [];
    const closes: string[] = [];
    const { writer, streams } = holdingWriter();
    const handler = serveSse(writer, { keepAlive: false });
    const running = await listen((req, res) => {
      req.on('error', (error) => requestErrors.push(error));
      req.on('close', () => closes.push('request'));
      res.on('close', () => closes.push('response'));
      handler(req, res);
    });
    servers.push(running);
    const { socket, text } = await openRaw(running.url);
    await waitFor(() => text().includes('\r\n\r\n3\r\n:\n\n\r\n'), 5000, 'the head and the opening comment');
    await waitFor(() => streams.length === 1);
    socket.end(); // FIN: the client sends nothing more, and would still read
    await once(socket, 'close');
    await waitFor(() => closes.length === 2, 5000, 'the request and the response to close');
    assert.deepEqual(closes.sort(), ['request', 'response']);
    assert.ok(streams[0]!.signal.aborted, 'the stream saw its client go');
    // Let Node's own close handling run: it finds the request already closed.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(requestErrors, [], 'a client leaving is not an error');
  });

  test('a response after the stream on the same kept-alive connection is not cut when the client then closes its side', async () => {
    // The stream ends (the server closes it); the connection serves the next request, a body far
    // larger than the socket takes at once, and the client half-closes right after asking for
    // it. node:http ends the socket gracefully: the whole body must still arrive.
    const BODY = 8 * 2 ** 20;
    const handler = serveSse(
      (_request, stream: SseStream) => {
        stream.close();
      },
      { keepAlive: false },
    );
    const running = await listen((req, res) => {
      if (req.url === '/big') res.end(Buffer.alloc(BODY, 'x'));
      else handler(req, res);
    });
    servers.push(running);
    const { socket, text } = await openRaw(running.url);
    await waitFor(() => text().includes('\r\n0\r\n\r\n'), 5000, 'the stream to end');
    let bodyBytes = 0;
    const headEnd = text().length;
    socket.removeAllListeners('data');
    let rest = '';
    socket.on('data', (chunk: string) => {
      rest += chunk.slice(0, 200);
      bodyBytes += chunk.length;
    });
    socket.write(`GET /big HTTP/1.1\r\nHost: x\r\n\r\n`);
    socket.end();
    socket.pause(); // read late: the body waits in the server's buffers when the FIN arrives
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.resume();
    await once(socket, 'close');
    assert.ok(headEnd > 0);
    assert.match(rest, /^HTTP\/1\.1 200/);
    const head = rest.indexOf('\r\n\r\n') + 4;
    assert.equal(bodyBytes - head, BODY, 'the whole body arrived');
  });

  test("a highWaterMark below the socket's own: a client that reads nothing is caught at that mark, not at the socket's", async () => {
    // The socket's last write saying it is under its own mark (16 KiB) says nothing of a smaller
    // one: the stream must still look, or "drop" would let 16 KiB pile up against a 1 KiB mark.
    const MARK = 1024;
    const EVENT = 'x'.repeat(500);
    let peak = 0;
    let sent = 0;
    let dropped = 0;
    const handler = serveSse(
      async (request, stream: SseStream) => {
        const socket = (request as IncomingMessage).socket;
        // Bounded: 100,000 events of 500 bytes, far past what the kernel takes from a non-reader.
        while (stream.dropped === 0 && sent < 100_000 && !stream.closed) {
          await stream.send({ data: EVENT });
          sent++;
          peak = Math.max(peak, socket.writableLength);
          if (sent % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
        dropped = stream.dropped;
        await once(stream.signal, 'abort');
      },
      { keepAlive: false, highWaterMark: MARK, maxBuffered: MARK, onSlowClient: 'drop' },
    );
    const running = await listen(handler);
    servers.push(running);
    const { socket } = await openRaw(running.url);
    socket.pause(); // reads nothing from here on
    await waitFor(() => dropped > 0 || sent >= 100_000, 20_000, 'the stream to start dropping');
    socket.destroy();
    assert.ok(dropped > 0, `nothing dropped after ${sent} events`);
    assert.ok(peak <= MARK + 2 * (EVENT.length + 20), `${peak} bytes waited in the server against a mark of ${MARK}`);
  });
});
