/** The same handler on node:http2's compatibility API (cleartext h2c, as behind a TLS-terminating proxy). */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { serveSse, type SseStream } from '../../src/index.js';
import { waitFor } from '../helpers.js';

const server = createServer();
let session: ClientHttp2Session;
let lastStream: SseStream | undefined;
after(() => {
  session?.destroy();
  server.close();
});

test('HTTP/2: events stream, no connection-specific headers, client reset closes the stream', async () => {
  server.on(
    'request',
    serveSse(
      async (_req, stream) => {
        lastStream = stream;
        await stream.send({ id: 1, data: 'over h2' });
        await stream.send({ event: 'second', data: 'multi\nline' });
        await new Promise((resolve) => stream.signal.addEventListener('abort', resolve));
      },
      // Even when the app asks for them: HTTP/2 forbids these headers and Node would throw.
      { onConnect: () => [200, { Connection: 'keep-alive', 'Transfer-Encoding': 'chunked' }] },
    ),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const request = session.request({ ':path': '/events', 'last-event-id': 'h2-id' });
  const [headers] = (await once(request, 'response')) as [Record<string, string | number>];
  assert.equal(headers[':status'], 200);
  assert.equal(headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(headers.connection, undefined);
  assert.equal(headers['transfer-encoding'], undefined);

  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  request.setEncoding('utf8');
  request.on('data', (chunk: string) => parser.feed(chunk));
  await waitFor(() => events.length === 2, 5000, 'two events');
  assert.deepEqual(events.map((e) => e.data), ['over h2', 'multi\nline']);
  assert.equal(lastStream?.lastEventId, 'h2-id');

  request.close();
  await waitFor(() => lastStream!.signal.aborted, 5000, 'the stream to close when the client resets it');
});
