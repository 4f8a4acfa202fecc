/** Express 5 and 4 use the handler's (req, res, next) form directly: no adapter. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { createGunzip } from 'node:zlib';
import compression from 'compression';
import express, { type NextFunction, type Request, type Response } from 'express';
import { EventSource } from 'eventsource';
import { createHub, serveSse } from '../../src/index.js';
import { checkHubDelivery, get, leavingClientCase, recordingLogger, refusingCase, serverPool, streamEvents, text, waitFor } from '../helpers.js';

// Express 4 is installed under an alias, without types of its own; its API is the same here.
const express4 = createRequire(import.meta.url)('express4') as typeof express;

const start = serverPool();

/** The default headers, but with compression allowed: an app that overrides Cache-Control. */
const compressible = () => [200, { 'cache-control': 'no-cache' }] as [number, Record<string, string>];

for (const [name, makeApp] of [
  ['Express 5', express],
  ['Express 4', express4],
] as const) {
  describe(name, () => {
    test('middleware runs first, events reach an EventSource', async () => {
      const app = makeApp();
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
      const url = await start(app);
      const source = new EventSource(`${url}/events`);
      const got: string[] = [];
      source.addEventListener('hello', (event) => got.push(event.data));
      await waitFor(() => got.length > 0, 5000, 'an event');
      source.close();
      assert.equal(got[0], 'ada');
    });

    test('onConnect refuses with its status, headers and body', async () => {
      const refusing = refusingCase();
      const app = makeApp();
      app.use((_req, res, next) => (res.setHeader('x-upstream', 'yes'), next()));
      app.get('/events', refusing.handler);
      await refusing.check(`${await start(app)}/events`, { 'x-upstream': 'yes' });
    });

    test('headers already sent reach next(error)', async () => {
      const app = makeApp();
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
      assert.equal(await text(await get(`${await start(app)}/events`)), 'too early');
      assert.ok(forwarded instanceof Error);
      assert.match(forwarded.message, /headers were already sent/);
    });

    test("hub.handler() mounted with app.use('/sse', ...): the default ?topic= parsing still works", async () => {
      const hub = createHub({ logger: recordingLogger().logger });
      const app = makeApp();
      app.use('/sse', hub.handler());
      const url = await start(app);
      await checkHubDelivery(hub, `${url}/sse?topic=a`, 'a');
      assert.equal((await get(`${url}/sse`)).statusCode, 204, 'no topic');
      await hub.close();
    });

    test('a client that leaves before an async onConnect answers: nothing written, no writer, no error', async () => {
      const leaving = leavingClientCase(31_401);
      let res: ServerResponse | undefined;
      const app = makeApp();
      app.use((_req, response, next) => ((res = response), next()));
      app.get('/events', leaving.handler);
      await leaving.check(`${await start(app)}/events`, () => res);
    });

    test('with compression() in front, events arrive one by one and uncompressed (no-transform)', async () => {
      const hub = createHub({ logger: recordingLogger().logger });
      const app = makeApp();
      app.use(compression({ threshold: 0 }));
      app.get('/events', hub.handler());
      // Each event must be readable before the next one is even published.
      const reader = await checkHubDelivery(hub, `${await start(app)}/events?topic=t`, 't', 3, { 'accept-encoding': 'gzip' });
      assert.equal(reader.res.headers['content-encoding'], undefined);
      await hub.close();
    });

    test('with compression active anyway (Cache-Control overridden), each event is flushed', async () => {
      const hub = createHub({ logger: recordingLogger().logger });
      const app = makeApp();
      app.use(compression({ threshold: 0 }));
      app.get('/events', hub.handler({ onConnect: compressible }));
      const url = await start(app);
      const res = await get(`${url}/events?topic=t`, { 'accept-encoding': 'gzip' });
      assert.equal(res.headers['content-encoding'], 'gzip', 'the stream really is compressed');
      const reader = streamEvents(res.pipe(createGunzip()));
      await waitFor(() => hub.stats().connections === 1, 5000, 'the subscription');
      for (let n = 1; n <= 3; n++) {
        await hub.publish('t', { data: `gzipped ${n}` });
        await reader.until(() => reader.events.length === n, 2000, `event ${n} on its own`);
      }
      assert.deepEqual(reader.events.map((e) => e.data), ['gzipped 1', 'gzipped 2', 'gzipped 3']);
      res.destroy();
      await hub.close();
    });
  });
}

test('compression active and a client that stops reading: "wait" still holds the writer back', async () => {
  const app = express();
  app.use(compression({ threshold: 0 }));
  let sent = 0;
  const total = 200;
  app.get(
    '/events',
    // Random data barely compresses: 200 events of 200 KB would be 40 MB held for one client.
    serveSse(
      async (_req, stream) => {
        for (let n = 0; n < total && !stream.closed; n++) {
          await stream.send({ data: randomBytes(150_000).toString('base64') });
          sent++;
        }
      },
      { onConnect: compressible, keepAlive: false },
    ),
  );
  const res = await get(`${await start(app)}/events`, { 'accept-encoding': 'gzip' });
  assert.equal(res.headers['content-encoding'], 'gzip');
  res.pause();
  // Let the writer run until it stalls (kernel socket buffers take a few MB first).
  let last = -1;
  for (let round = 0; round < 50 && sent !== last; round++) {
    last = sent;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(sent, last, 'the writer stalled');
  assert.ok(sent < total / 2, `the writer waits for the client: ${sent} of ${total} events accepted`);
  res.destroy();
});
