/** Connect uses the handler's (req, res, next) form directly, mounted at a path like any middleware. */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import connect from 'connect';
import { createHub, serveSse } from '../../src/index.js';
import { checkHubDelivery, get, recordingLogger, serverPool, text } from '../helpers.js';

const start = serverPool();

describe('Connect', () => {
  test("hub.handler() mounted with app.use('/sse', ...) after other middleware: topics, events, refusals", async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const app = connect();
    app.use((req: IncomingMessage, res: ServerResponse, next: connect.NextFunction) => {
      res.setHeader('x-upstream', 'yes');
      if (req.headers.cookie === undefined) {
        res.writeHead(401).end('no session');
        return;
      }
      next();
    });
    app.use('/sse', hub.handler());
    const url = await start(app);

    const refused = await get(`${url}/sse?topic=a`);
    assert.equal(refused.statusCode, 401);
    assert.equal(await text(refused), 'no session');

    const reader = await checkHubDelivery(hub, `${url}/sse?topic=a`, 'a', 1, { cookie: 's=1' });
    assert.equal(reader.res.headers['x-upstream'], 'yes', 'headers set upstream stay');
    assert.equal(reader.res.headers['content-type'], 'text/event-stream; charset=utf-8');
    await hub.close();
  });

  test('headers already sent reach the error middleware through next(error)', async () => {
    let forwarded: unknown;
    const app = connect();
    app.use((_req: IncomingMessage, res: ServerResponse, next: connect.NextFunction) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('too early');
      next();
    });
    app.use(serveSse(() => {}, { logger: recordingLogger().logger }));
    app.use((error: unknown, _req: IncomingMessage, res: ServerResponse, _next: connect.NextFunction) => {
      forwarded = error;
      res.end();
    });
    assert.equal(await text(await get(await start(app))), 'too early');
    assert.ok(forwarded instanceof Error);
    assert.match(forwarded.message, /headers were already sent/);
  });
});
