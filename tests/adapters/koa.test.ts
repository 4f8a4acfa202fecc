/** serve-sse/koa against real Koa 3: upstream middleware, ctx.respond, refusals, sub-paths. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Koa, { type Middleware } from 'koa';
import { createHub, serveSse } from '../../src/index.js';
import { koaContextOf, koaSse } from '../../src/adapters/koa.js';
import { checkHangUpCleansUp, checkHubDelivery, get, holdingWriter, leavingClientCase, openEvents, recordingLogger, refusingCase, serverPool, text, waitFor } from '../helpers.js';

const serve = serverPool();

/** A Koa app on 127.0.0.1:0, with the errors it reports on its 'error' event. */
async function start(app: Koa): Promise<{ url: string; errors: unknown[] }> {
  const errors: unknown[] = [];
  app.silent = true;
  app.on('error', (error: unknown) => errors.push(error));
  return { url: await serve(app.callback()), errors };
}

/** What koa-mount does: strips a path prefix for the middleware below it, and restores it after. */
function mount(prefix: string, middleware: Middleware): Middleware {
  return async (ctx, next) => {
    if (!ctx.path.startsWith(`${prefix}/`)) return next();
    const original = ctx.path;
    ctx.path = ctx.path.slice(prefix.length);
    try {
      await middleware(ctx, next);
    } finally {
      ctx.path = original;
    }
  };
}

describe('koaSse', () => {
  test('upstream middleware runs first and its headers stay; the writer reaches ctx; nothing downstream runs', async () => {
    const app = new Koa();
    const statusAfterNext: number[] = [];
    let downstream = 0;
    app.use(async (ctx, next) => {
      ctx.set('X-Upstream', 'yes');
      await next();
      statusAfterNext.push(ctx.status);
    });
    app.use(async (ctx, next) => {
      if (ctx.get('authorization') !== 'Bearer ada') ctx.throw(401, 'who are you?');
      ctx.state.user = 'ada';
      await next();
    });
    app.use(
      koaSse(
        serveSse(async (request, stream) => {
          await stream.send({ event: 'hello', id: 7, data: { user: koaContextOf(request).state.user } });
        }),
      ),
    );
    app.use(() => void downstream++);
    const { url, errors } = await start(app);

    const refused = await get(url);
    assert.equal(refused.statusCode, 401, "upstream auth answers with Koa's own error handling");
    assert.equal(await text(refused), 'who are you?');

    const reader = await openEvents(url, { authorization: 'Bearer ada' });
    assert.equal(reader.res.statusCode, 200);
    assert.equal(reader.res.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(reader.res.headers['x-upstream'], 'yes', 'ctx.set headers from upstream are kept');
    await reader.until(() => reader.ended, 5000, 'the stream to end with the writer');
    assert.deepEqual(reader.events.map(({ event, id, data }) => ({ event, id, data })), [{ event: 'hello', id: '7', data: '{"user":"ada"}' }]);
    assert.equal(downstream, 0);
    // (The 401 was thrown through the upstream middleware, so only the stream's status is recorded.)
    assert.deepEqual(statusAfterNext, [200], 'upstream sees the final status once next() resolves');
    assert.deepEqual(errors.filter((e) => (e as { status?: number }).status !== 401), []);
  });

  test('ctx.respond = false: Koa does not end the stream once the middleware chain has settled', async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const app = new Koa();
    let settled = 0;
    app.use(async (_ctx, next) => {
      await next();
      settled++;
    });
    app.use(koaSse(hub.handler()));
    const { url, errors } = await start(app);
    const reader = await openEvents(`${url}/?topic=t`);
    await waitFor(() => settled === 1 && hub.stats().connections === 1, 5000, 'the chain to settle');
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (let n = 1; n <= 2; n++) {
      await hub.publish('t', { data: `after the chain ${n}` });
      await reader.until(() => reader.events.length === n, 5000, `event ${n}`);
    }
    assert.equal(reader.ended, false);
    assert.deepEqual(reader.events.map((e) => e.data), ['after the chain 1', 'after the chain 2']);
    reader.res.destroy();
    await waitFor(() => hub.stats().connections === 0, 5000, 'the subscription to end');
    assert.deepEqual(errors, [], 'a client leaving is not an app error');
    await hub.close();
  });

  test('onConnect refuses with its status, headers and body, upstream headers included', async () => {
    const refusing = refusingCase();
    const app = new Koa();
    app.use(async (ctx, next) => {
      ctx.set('X-Upstream', 'yes');
      await next();
    });
    app.use(koaSse(refusing.handler));
    await refusing.check((await start(app)).url, { 'x-upstream': 'yes' });
  });

  test('a client that disconnects aborts the stream and leaves nothing behind', async () => {
    const { writer, streams } = holdingWriter();
    const app = new Koa();
    app.use(koaSse(serveSse(writer, { keepAlive: 31_101 })));
    const { url, errors } = await start(app);
    await checkHangUpCleansUp(url, streams, 31_101);
    assert.deepEqual(errors, [], 'a client leaving is not an app error');
  });

  test('hub.handler() mounted at a sub-path: the default ?topic= parsing still works', async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const app = new Koa();
    app.use(mount('/sse', koaSse(hub.handler())));
    app.use((ctx) => void (ctx.body = 'not events'));
    const { url } = await start(app);
    await checkHubDelivery(hub, `${url}/sse/events?topic=a&topic=b`, 'b');
    assert.equal(await text(await get(`${url}/elsewhere`)), 'not events');
    await hub.close();
  });

  test('a client that leaves before an async onConnect answers: nothing written, no writer, no error', async () => {
    const leaving = leavingClientCase(31_102);
    const app = new Koa();
    let res: { headersSent: boolean } | undefined;
    app.use(async (ctx, next) => {
      res = ctx.res;
      await next();
    });
    app.use(koaSse(leaving.handler));
    const { url, errors } = await start(app);
    await leaving.check(url, () => res);
    assert.deepEqual(errors, []);
  });

  test("a response upstream already started: the error reaches Koa's 'error' event and the response ends", async () => {
    let writerCalls = 0;
    const app = new Koa();
    app.use(async (ctx, next) => {
      ctx.res.writeHead(200, { 'content-type': 'text/plain' });
      ctx.res.write('too early');
      await next();
    });
    app.use(koaSse(serveSse(() => void writerCalls++)));
    const { url, errors } = await start(app);
    assert.equal(await text(await get(url)), 'too early');
    await waitFor(() => errors.length === 1, 5000, "Koa's error event");
    assert.match((errors[0] as Error).message, /headers were already sent/);
    assert.equal(writerCalls, 0);
  });

  test('koaSse(something else) throws a TypeError at start-up', () => {
    assert.throws(() => koaSse(undefined as never), { name: 'TypeError', message: /koaSse\(handler\)/ });
  });
});

test('koaContextOf names the mistake for a request that did not come through koaSse', () => {
  assert.throws(() => koaContextOf(new Request('http://127.0.0.1/events')), { name: 'TypeError', message: /did not come through koaSse/ });
});
