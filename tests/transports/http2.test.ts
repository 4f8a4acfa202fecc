/** The same handler on node:http2's compatibility API (cleartext h2c, as behind a TLS-terminating proxy). */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { createHub, serveSse, type SseStream } from '../../src/index.js';
import { recordingLogger, waitFor } from '../helpers.js';

const server = createServer();
let session: ClientHttp2Session;
let lastStream: SseStream | undefined;
const cleanups: Array<() => void> = [];
after(() => {
  session?.destroy();
  server.close();
  for (const cleanup of cleanups) cleanup();
});

/** Parses what arrives on a client stream with eventsource-parser. */
function parse(request: NodeJS.ReadableStream): EventSourceMessage[] {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  request.setEncoding('utf8');
  request.on('data', (chunk: string) => parser.feed(chunk));
  return events;
}

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

  const events = parse(request);
  await waitFor(() => events.length === 2, 5000, 'two events');
  assert.deepEqual(events.map((e) => e.data), ['over h2', 'multi\nline']);
  assert.equal(lastStream?.lastEventId, 'h2-id');

  request.close();
  await waitFor(() => lastStream!.signal.aborted, 5000, 'the stream to close when the client resets it');
});

test('HTTP/2: a hub handler subscribes from ?topic=, and refusals keep their status and headers', async () => {
  const hub = createHub({ logger: recordingLogger().logger });
  const h2 = createServer(
    hub.handler({ onConnect: (request) => ('authorization' in request.headers ? [200] : { status: 401, headers: { 'www-authenticate': 'Bearer' } }) }),
  );
  h2.listen(0, '127.0.0.1');
  await once(h2, 'listening');
  const client = connect(`http://127.0.0.1:${(h2.address() as AddressInfo).port}`);
  cleanups.push(() => {
    client.destroy();
    h2.close();
  });

  const refused = client.request({ ':path': '/events?topic=a' });
  const [refusedHeaders] = (await once(refused, 'response')) as [Record<string, string | number>];
  assert.equal(refusedHeaders[':status'], 401);
  assert.equal(refusedHeaders['www-authenticate'], 'Bearer');
  refused.close();

  const request = client.request({ ':path': '/events?topic=a', authorization: 'Bearer x' });
  const [headers] = (await once(request, 'response')) as [Record<string, string | number>];
  assert.equal(headers[':status'], 200);
  const events = parse(request);
  await waitFor(() => hub.stats().connections === 1, 5000, 'the subscription');
  const id = await hub.publish('a', { data: 'h2 hub' });
  await waitFor(() => events.length === 1, 5000, 'the event');
  assert.deepEqual(events.map((e) => [e.id, e.data]), [[id, 'h2 hub']]);
  request.close();
  await waitFor(() => hub.stats().connections === 0, 5000, 'the subscription to end');
  await hub.close();
});
