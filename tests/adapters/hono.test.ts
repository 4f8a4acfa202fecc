/** Hono on @hono/node-server, through handler.fetch: no adapter, `(c) => handler.fetch(c.req.raw)`. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { createHub, serveSse, type SseHandler } from '../../src/index.js';
import { checkHangUpCleansUp, checkHubDelivery, get, holdingWriter, leavingClientCase, openEvents, recordingLogger, serverPool, text } from '../helpers.js';

const serve = serverPool();
const start = (app: Hono): Promise<string> => serve(getRequestListener(app.fetch));

/** The one line of glue the README shows. */
const route = (handler: SseHandler) => (c: { req: { raw: Request } }) => handler.fetch(c.req.raw);

describe('Hono', () => {
  test('middleware runs first and its headers stay; events reach the client; onConnect can refuse', async () => {
    const app = new Hono();
    const seen: string[] = [];
    app.use('*', async (c, next) => {
      seen.push(c.req.path);
      await next();
      // Hono's way for middleware to add headers to a Response a handler returned.
      c.header('x-upstream', 'yes');
    });
    const events = serveSse(
      async (request, stream) => {
        await stream.send({ event: 'hello', id: 1, data: { path: new URL((request as Request).url).pathname } });
        await stream.send({ data: 'second' });
      },
      { onConnect: (request) => ((request as Request).headers.get('authorization') === 'Bearer ada' ? [200] : { status: 401, body: 'who?' }) },
    );
    app.get('/events', route(events));
    const url = await start(app);

    const refused = await get(`${url}/events`);
    assert.equal(refused.statusCode, 401);
    assert.equal(await text(refused), 'who?');

    const reader = await openEvents(`${url}/events`, { authorization: 'Bearer ada' });
    assert.equal(reader.res.statusCode, 200);
    assert.equal(reader.res.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(reader.res.headers['x-upstream'], 'yes');
    assert.deepEqual(seen, ['/events', '/events']);
    await reader.until(() => reader.ended, 5000, 'the stream to end with the writer');
    assert.deepEqual(reader.events.map(({ event, id, data }) => ({ event, id, data })), [
      { event: 'hello', id: '1', data: '{"path":"/events"}' },
      { event: undefined, id: undefined, data: 'second' },
    ]);
  });

  test('a client that disconnects aborts the stream and leaves nothing behind', async () => {
    const { writer, streams } = holdingWriter();
    const app = new Hono();
    app.get('/events', route(serveSse(writer, { keepAlive: 31_201 })));
    await checkHangUpCleansUp(`${await start(app)}/events`, streams, 31_201);
  });

  test('hub.handler() in a sub-app routed at /sse: ?topic= parsing works, and events arrive one by one', async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const sse = new Hono();
    sse.get('/events', route(hub.handler()));
    const app = new Hono();
    app.route('/sse', sse);
    const url = await start(app);
    await checkHubDelivery(hub, `${url}/sse/events?topic=x`, 'x', 2);
    await hub.close();
  });

  test('a client that leaves before an async onConnect answers: no writer, no error, nothing left', async () => {
    const leaving = leavingClientCase(31_202);
    const app = new Hono();
    app.get('/events', route(leaving.handler));
    await leaving.check(`${await start(app)}/events`);
  });
});
