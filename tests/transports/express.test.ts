/** Express uses the handler's (req, res, next) form directly: no adapter. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import express, { type NextFunction, type Request, type Response } from 'express';
import { EventSource } from 'eventsource';
import { serveSse } from '../../src/index.js';
import { get, listen, recordingLogger, text, waitFor, type Running } from '../helpers.js';

const servers: Running[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

test('Express: middleware runs first, events reach an EventSource', async () => {
  const app = express();
  app.use((req, _res, next) => {
    (req as Request & { user?: string }).user = 'ada';
    next();
  });
  app.get(
    '/events',
    serveSse(async (req, stream) => {
      await stream.send({ event: 'hello', data: (req as Request & { user?: string }).user });
    }),
  );
  const running = await listen(app);
  servers.push(running);
  const source = new EventSource(`${running.url}/events`);
  const got: string[] = [];
  source.addEventListener('hello', (event) => got.push(event.data));
  await waitFor(() => got.length > 0, 5000, 'an event');
  source.close();
  assert.equal(got[0], 'ada');
});

test('Express: headers already sent reach next(error)', async () => {
  const app = express();
  let forwarded: unknown;
  app.get(
    '/events',
    (_req, res, next) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('too early');
      next();
    },
    serveSse(() => {}, { logger: recordingLogger().logger }),
  );
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    forwarded = error;
    res.end();
  });
  const running = await listen(app);
  servers.push(running);
  await text(await get(`${running.url}/events`));
  assert.ok(forwarded instanceof Error);
  assert.match(forwarded.message, /headers were already sent/);
});
