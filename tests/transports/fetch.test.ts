/** handler.fetch: a streaming Response for Fetch-API runtimes (Hono, Next.js, Bun, Deno). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { createHub, serveSse, type SseStream } from '../../src/index.js';
import { recordingLogger, waitFor } from '../helpers.js';

/** Reads events from a Response body through eventsource-parser; `cancel` cancels the body. */
function eventReader(response: Response) {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  return {
    events,
    async until(count: number): Promise<void> {
      while (events.length < count) {
        const { value, done } = await reader.read();
        if (done) return;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    },
    cancel: () => reader.cancel(),
  };
}

test('a 200 answer is a streaming Response with the SSE headers, and the stream ends with the writer', async () => {
  const handler = serveSse(async (request, stream) => {
    assert.ok(request instanceof Request);
    await stream.send({ id: 'a', data: `hello ${stream.lastEventId}` });
    await stream.send({ event: 'bye', data: 'done' });
  });
  const response = await handler.fetch(new Request('http://localhost/events?lastEventId=7'));
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  assert.match(response.headers.get('cache-control') ?? '', /no-transform/);
  assert.equal(response.headers.get('connection'), null, 'the runtime owns connection headers');
  const body = await response.text();
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  parser.feed(body);
  assert.deepEqual(events.map((e) => [e.id, e.event, e.data]), [['a', undefined, 'hello 7'], [undefined, 'bye', 'done']]);
});

test('a refusal is a plain Response and the writer never runs', async () => {
  let ran = false;
  const handler = serveSse(() => void (ran = true), {
    onConnect: async (request) => (request instanceof Request && request.headers.has('authorization') ? [200] : { status: 401, body: 'token?' }),
  });
  const refused = await handler.fetch(new Request('http://localhost/'));
  assert.equal(refused.status, 401);
  assert.equal(await refused.text(), 'token?');
  assert.equal(ran, false);
  const noContent = await serveSse(() => {}, { onConnect: () => [204] }).fetch(new Request('http://localhost/'));
  assert.equal(noContent.status, 204);
  assert.equal(noContent.body, null);
});

test('cancelling the body aborts the signal', async () => {
  let stream: SseStream | undefined;
  const handler = serveSse(async (_req, s) => {
    stream = s;
    for (let i = 0; !s.closed; i++) {
      await s.send({ data: String(i) });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  });
  const response = await handler.fetch(new Request('http://localhost/'));
  const reader = eventReader(response);
  await reader.until(3);
  assert.deepEqual(reader.events.map((e) => e.data), ['0', '1', '2']);
  await reader.cancel();
  await waitFor(() => stream!.signal.aborted, 2000, 'signal to abort on cancel');
  assert.equal(stream!.closed, true);
});

test('aborting the request aborts the signal (runtimes that never cancel the body)', async () => {
  let stream: SseStream | undefined;
  const controller = new AbortController();
  const handler = serveSse((_req, s) => {
    stream = s;
    return new Promise<void>((resolve) => s.signal.addEventListener('abort', () => resolve()));
  });
  await handler.fetch(new Request('http://localhost/', { signal: controller.signal }));
  await waitFor(() => stream !== undefined);
  controller.abort();
  await waitFor(() => stream!.signal.aborted, 2000, 'signal to abort');
});

test('"drop" bounds what an unread body holds: at most maxBuffered plus one event', async () => {
  let stream: SseStream | undefined;
  const handler = serveSse(
    async (_req, s) => {
      stream = s;
      for (let i = 0; i < 2000; i++) await s.send({ data: 'x'.repeat(1024) });
    },
    // The cap, not the mark, bounds a burst: set to the mark here, the burst is cut short at once.
    { onSlowClient: 'drop', highWaterMark: 16 * 1024, maxBuffered: 16 * 1024 },
  );
  const response = await handler.fetch(new Request('http://localhost/'));
  await waitFor(() => stream?.closed === true, 5000, 'the writer to finish');
  assert.ok(stream!.dropped > 1900, `dropped ${stream!.dropped}`);
  const body = await response.text();
  assert.ok(body.length < 20 * 1024, `held ${body.length} bytes`);
});

test('hub.close() over handler.fetch resolves once each body has been read to its end, and cuts one that is not read', async () => {
  const { lines, logger } = recordingLogger();
  const hub = createHub({ logger });
  const read = await hub.handler().fetch(new Request('http://localhost/?topic=a'));
  const unread = await hub.handler().fetch(new Request('http://localhost/?topic=a'));
  const text = read.text();
  // Something queued for the unread body: its end has to wait for a reader that never comes.
  await hub.publish('a', { data: 'x' });
  const started = performance.now();
  await hub.close({ retry: 1000, timeout: 300 });
  const ms = performance.now() - started;
  const body = await text;
  assert.match(body, /retry: 1000\n\n$/);
  assert.ok(ms < 1000, `close() took ${Math.round(ms)} ms`);
  // The unread one was cut at the timeout: its body errors rather than ending cleanly.
  assert.deepEqual(lines.map((line) => line.obj), [{ cut: 1 }]);
  await assert.rejects(unread.text());

  // With nothing unread, close() does not wait for its timeout, and warns of nothing.
  const quiet = recordingLogger();
  const second = createHub({ logger: quiet.logger });
  const response = await second.handler().fetch(new Request('http://localhost/?topic=b'));
  const whole = response.text();
  const t0 = performance.now();
  await second.close({ timeout: 3000 });
  assert.ok(performance.now() - t0 < 1000);
  assert.equal(await whole, ':\n\n');
  assert.deepEqual(quiet.lines, []);
});
