/** serve-sse/fastify against real Fastify 5: hooks, refusals, hijack, logging, prefixes, compression. */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import compress from '@fastify/compress';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { createHub, serveSse } from '../../src/index.js';
import { fastifyRequestOf, fastifySse } from '../../src/adapters/fastify.js';
import { checkHangUpCleansUp, checkHubDelivery, get, holdingWriter, leavingClientCase, openEvents, recordingLogger, refusingCase, text, waitFor } from '../helpers.js';

const apps: FastifyInstance[] = [];
after(() => Promise.all(apps.map((app) => app.close())));

/** A Fastify app on 127.0.0.1:0; open event streams do not hold up its close(). */
async function start(setup: (app: FastifyInstance) => void | Promise<void>, options: FastifyServerOptions = {}): Promise<string> {
  const app = Fastify({ forceCloseConnections: true, ...options });
  apps.push(app);
  await setup(app);
  return app.listen({ port: 0, host: '127.0.0.1' });
}

/** Fastify's own (pino) log lines, parsed. */
function fastifyLog(): { lines: Array<Record<string, unknown>>; options: FastifyServerOptions } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
  return { lines, options: { logger: { level: 'info', stream } } };
}

describe('fastifySse', () => {
  test('hooks run first; their headers stay; the writer reaches the FastifyRequest; events arrive', async () => {
    const url = await start((app) => {
      app.decorateRequest('user', '');
      app.addHook('onRequest', async (_request, reply) => {
        reply.header('x-request-seen', 'yes');
      });
      app.addHook('preHandler', async (request, reply) => {
        if (request.headers.authorization !== 'Bearer ada') return reply.code(401).send({ error: 'who?' });
        (request as typeof request & { user: string }).user = 'ada';
      });
      app.get(
        '/events',
        fastifySse(
          serveSse(async (request, stream) => {
            const { user } = fastifyRequestOf(request) as unknown as { user: string };
            await stream.send({ event: 'hello', id: 1, data: { user } });
            await stream.send({ data: 'two\nlines' });
          }),
        ),
      );
    });

    const refused = await get(`${url}/events`);
    assert.equal(refused.statusCode, 401, 'a preHandler refusal stops the request before the stream');
    assert.deepEqual(JSON.parse(await text(refused)), { error: 'who?' });

    const reader = await openEvents(`${url}/events`, { authorization: 'Bearer ada' });
    assert.equal(reader.res.statusCode, 200);
    assert.equal(reader.res.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(reader.res.headers['x-request-seen'], 'yes');
    await reader.until(() => reader.ended, 5000, 'the stream to end with the writer');
    assert.deepEqual(
      reader.events.map(({ event, id, data }) => ({ event, id, data })),
      [
        { event: 'hello', id: '1', data: '{"user":"ada"}' },
        { event: undefined, id: undefined, data: 'two\nlines' },
      ],
    );
  });

  test('onConnect refuses with its status, headers and body; the writer never runs', async () => {
    const refusing = refusingCase();
    const url = await start((app) => {
      app.addHook('onRequest', async (_request, reply) => void reply.header('x-hook', '1'));
      app.get('/events', fastifySse(refusing.handler));
    });
    await refusing.check(`${url}/events`, { 'x-hook': '1' });
  });

  test('a client that disconnects aborts the stream and leaves nothing behind', async () => {
    const { writer, streams } = holdingWriter();
    const url = await start((app) => void app.get('/events', fastifySse(serveSse(writer, { keepAlive: 31_001 }))));
    await checkHangUpCleansUp(`${url}/events`, streams, 31_001);
  });

  test("hub.handler() under a prefix: the default ?topic= parsing still works, and a publish arrives", async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const url = await start(async (app) => {
      await app.register(
        async (sse) => {
          sse.get('/events', fastifySse(hub.handler()));
        },
        { prefix: '/sse' },
      );
    });
    await checkHubDelivery(hub, `${url}/sse/events?topic=news`, 'news');
    assert.equal((await get(`${url}/sse/events`)).statusCode, 204, 'no topic answers 204');
    await hub.close();
  });

  test("problems go to Fastify's logger (request.log) when the handler has no logger of its own", async () => {
    const log = fastifyLog();
    const own = recordingLogger();
    const boom = async (): Promise<void> => {
      throw new Error('writer exploded');
    };
    const url = await start((app) => {
      app.get('/default', fastifySse(serveSse(boom)));
      app.get('/own', fastifySse(serveSse(boom, { logger: own.logger })));
    }, log.options);

    await text(await get(`${url}/default`));
    await waitFor(() => log.lines.some((line) => line.level === 50), 5000, 'an error in the Fastify log');
    const logged = log.lines.find((line) => line.level === 50)!;
    assert.match(String(logged.msg), /the stream writer threw/);
    assert.match(JSON.stringify(logged.err), /writer exploded/);
    assert.equal(typeof logged.reqId, 'string', 'logged through the request logger, so the line carries its id');

    const before = log.lines.filter((line) => line.level === 50).length;
    await text(await get(`${url}/own`));
    await waitFor(() => own.lines.length === 1, 5000, "an error in the handler's own logger");
    assert.match((own.lines[0]!.obj as Error).message, /writer exploded/);
    assert.equal(log.lines.filter((line) => line.level === 50).length, before, 'not in the Fastify log as well');
  });

  test('a hub handler logs to Fastify too: its default logger is the console one', async () => {
    const log = fastifyLog();
    const hub = createHub();
    const url = await start((app) => {
      app.get('/events', fastifySse(hub.handler({ onConnect: () => { throw new Error('db down'); } })));
    }, log.options);
    const res = await get(`${url}/events?topic=a`);
    assert.equal(res.statusCode, 500);
    await text(res);
    await waitFor(() => log.lines.some((line) => line.level === 50), 5000, 'an error in the Fastify log');
    assert.match(JSON.stringify(log.lines.find((line) => line.level === 50)), /db down/);
    await hub.close();
  });

  test('with @fastify/compress in front, events still arrive one by one', async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const url = await start(async (app) => {
      await app.register(compress, { global: true, threshold: 0 });
      app.get('/json', async () => ({ compressed: 'x'.repeat(2000) }));
      app.get('/events', fastifySse(hub.handler()));
    });
    const json = await get(`${url}/json`, { 'accept-encoding': 'gzip' });
    assert.equal(json.headers['content-encoding'], 'gzip', 'compression is on for ordinary routes');
    json.resume();

    // Each event must be readable before the next one is even published.
    const reader = await checkHubDelivery(hub, `${url}/events?topic=t`, 't', 3, { 'accept-encoding': 'gzip' });
    assert.equal(reader.res.headers['content-encoding'], undefined);
    await hub.close();
  });

  test('a client that leaves before an async onConnect answers: nothing written, no writer, no error', async () => {
    const leaving = leavingClientCase(31_002);
    let res: { headersSent: boolean } | undefined;
    const url = await start((app) => {
      app.addHook('onRequest', async (_request, reply) => void (res = reply.raw));
      app.get('/events', fastifySse(leaving.handler));
    });
    await leaving.check(`${url}/events`, () => res);
  });

  test('a response a hook already started: the error is logged to request.log, the response ends', async () => {
    const log = fastifyLog();
    let writerCalls = 0;
    const url = await start((app) => {
      app.addHook('onRequest', (_request, reply, done) => {
        reply.raw.writeHead(200, { 'content-type': 'text/plain' });
        reply.raw.write('too early');
        done();
      });
      app.get('/events', fastifySse(serveSse(() => void writerCalls++)));
    }, log.options);
    const res = await get(`${url}/events`);
    assert.equal(await text(res), 'too early');
    await waitFor(() => log.lines.some((line) => line.level === 50), 5000, 'an error in the Fastify log');
    assert.match(JSON.stringify(log.lines.find((line) => line.level === 50)), /headers were already sent/);
    assert.equal(writerCalls, 0);
  });

  test('fastifySse(something else) throws a TypeError at start-up', () => {
    assert.throws(() => fastifySse({} as never), { name: 'TypeError', message: /fastifySse\(handler\)/ });
  });
});

test('fastifyRequestOf names the mistake for a request that did not come through fastifySse', () => {
  assert.throws(() => fastifyRequestOf(new Request('http://127.0.0.1/events')), { name: 'TypeError', message: /did not come through fastifySse/ });
});
