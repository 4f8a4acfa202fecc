/**
 * A Next.js app-router route (`export const GET = (req) => handler.fetch(req)`), called as Next
 * calls it: a plain function from a Fetch `Request` to a `Response`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createHub, serveSse, type SseStream } from '../../src/index.js';
import { sharedHeartbeat } from '../../src/heartbeat.js';
import { recordingLogger, responseEvents, waitFor } from '../helpers.js';

describe('a Next.js-style route handler', () => {
  test('GET streams events, resumes after Last-Event-ID, and stops when the request is aborted', async () => {
    const streams: SseStream[] = [];
    const events = serveSse(async (_request, stream) => {
      streams.push(stream);
      let n = Number(stream.lastEventId ?? 0);
      while (!stream.closed && n < 1000) await stream.send({ event: 'count', id: ++n, data: n });
    });
    const GET = (request: Request): Promise<Response> => events.fetch(request);

    const client = new AbortController();
    const response = await GET(new Request('http://localhost/api/events', { headers: { 'last-event-id': '41' }, signal: client.signal }));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const reader = responseEvents(response);
    await reader.until(() => reader.events.length >= 2, 5000, 'two events');
    assert.deepEqual(reader.events.slice(0, 2).map((e) => [e.event, e.id, e.data]), [
      ['count', '42', '42'],
      ['count', '43', '43'],
    ]);
    // Next aborts the request when the browser goes away; the stream must see it.
    client.abort();
    await waitFor(() => streams[0]!.signal.aborted, 5000, 'the stream to abort');
    reader.res.destroy();
  });

  test('a hub route: topics from the query string, refusals as plain Responses', async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const handler = hub.handler({ onConnect: (request) => ((request as Request).headers.has('cookie') ? [200] : [401]) });
    const GET = (request: Request): Promise<Response> => handler.fetch(request);

    assert.equal((await GET(new Request('http://localhost/api/events?topic=a'))).status, 401);
    assert.equal((await GET(new Request('http://localhost/api/events', { headers: { cookie: 's=1' } }))).status, 204, 'no topic');

    const response = await GET(new Request('http://localhost/api/events?topic=a', { headers: { cookie: 's=1' } }));
    const reader = responseEvents(response);
    const id = await hub.publish('a', { data: 'hello route' });
    await reader.until(() => reader.events.length === 1, 5000, 'the published event');
    assert.deepEqual(reader.events.map((e) => [e.id, e.data]), [[id, 'hello route']]);
    reader.res.destroy();
    await waitFor(() => hub.stats().connections === 0, 5000, 'the subscription to end when the body is cancelled');
    await hub.close();
  });

  test('a request aborted before onConnect answers gets no stream, and the writer never runs', async () => {
    let writerCalls = 0;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const events = serveSse(() => void writerCalls++, {
      keepAlive: 31_301,
      onConnect: async () => {
        await released;
        return [200];
      },
    });
    const client = new AbortController();
    const pending = events.fetch(new Request('http://localhost/api/events', { signal: client.signal }));
    client.abort();
    release();
    const response = await pending;
    assert.notEqual(response.status, 200);
    assert.equal(response.body, null);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(writerCalls, 0);
    assert.equal(sharedHeartbeat(31_301).size, 0);
  });
});
