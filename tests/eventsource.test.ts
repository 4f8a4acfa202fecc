/** A real client, the `eventsource` package, against a real server: what browsers' EventSource does. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { EventSource } from 'eventsource';
import { serveSse } from '../src/index.js';
import { listen, recordingLogger, waitFor, type Running } from './helpers.js';

const servers: Running[] = [];
const sources: EventSource[] = [];
after(async () => {
  for (const source of sources) source.close();
  await Promise.all(servers.map((s) => s.close()));
});

function open(url: string): EventSource {
  const source = new EventSource(url);
  sources.push(source);
  return source;
}

test('events arrive, and a reconnecting client resumes with Last-Event-ID', async () => {
  const connections: Array<string | undefined> = [];
  const running = await listen(
    serveSse(
      async (_req, stream) => {
        connections.push(stream.lastEventId);
        const from = Number(stream.lastEventId ?? 0);
        // Two events per connection, then the stream ends and the client reconnects.
        for (const n of [from + 1, from + 2]) await stream.send({ event: 'count', id: n, data: `n=${n}` });
      },
      { retry: 50, logger: recordingLogger().logger },
    ),
  );
  servers.push(running);
  const source = open(running.url);
  const received: Array<{ data: string; id: string }> = [];
  source.addEventListener('count', (event) => received.push({ data: event.data, id: event.lastEventId }));
  await waitFor(() => received.length >= 6, 10_000, 'six events over three connections');
  source.close();
  assert.deepEqual(received.slice(0, 6).map((e) => e.data), ['n=1', 'n=2', 'n=3', 'n=4', 'n=5', 'n=6']);
  assert.deepEqual(received.slice(0, 6).map((e) => e.id), ['1', '2', '3', '4', '5', '6']);
  assert.deepEqual(connections.slice(0, 3), [undefined, '2', '4']);
});

test('a 401 from onConnect fails the client for good: no reconnection', async () => {
  let attempts = 0;
  const running = await listen(
    serveSse(() => assert.fail('the writer must not run'), {
      retry: 20,
      onConnect: () => {
        attempts++;
        return { status: 401, body: 'no' };
      },
    }),
  );
  servers.push(running);
  const source = open(running.url);
  const error = await once(source, 'error');
  assert.equal((error[0] as { code?: number }).code, 401);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(source.readyState, EventSource.CLOSED);
  assert.equal(attempts, 1);
});

test('message events, multi-line data and JSON reach the client intact', async () => {
  const running = await listen(
    serveSse(async (_req, stream) => {
      await stream.send({ data: 'line one\r\nline two\rline three\n' });
      await stream.send({ data: { nested: ['json', 1] } });
      await stream.send({ data: '' });
      await new Promise((resolve) => stream.signal.addEventListener('abort', resolve));
    }),
  );
  servers.push(running);
  const source = open(running.url);
  const messages: string[] = [];
  source.onmessage = (event) => messages.push(event.data as string);
  await waitFor(() => messages.length === 3, 5000, 'three messages');
  source.close();
  assert.deepEqual(messages, ['line one\nline two\nline three\n', '{"nested":["json",1]}', '']);
});
