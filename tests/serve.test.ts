/** serveSse through node:http: every behaviour of section 2 of the spec, on real sockets. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultOnConnect, sendEvent, serveSse, type ServeSseOptions, type SseStream, type StreamWriter } from '../src/index.js';
import { sharedHeartbeat } from '../src/heartbeat.js';
import { get, listen, openEvents, recordingLogger, text, waitFor, type Running } from './helpers.js';

const servers: Running[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function serve(writer: StreamWriter, options: ServeSseOptions = {}): Promise<Running> {
  const running = await listen(serveSse(writer, { logger: recordingLogger().logger, ...options }));
  servers.push(running);
  return running;
}

/** A writer that keeps the stream open until the client goes or the stream is closed. */
const holdOpen = (stream: SseStream): Promise<void> =>
  stream.signal.aborted ? Promise.resolve() : once(stream.signal, 'abort').then(() => {});

describe('onConnect', () => {
  test('a refusal answers with its status, headers and body, and the writer never runs', async () => {
    let writerCalls = 0;
    const { url } = await serve(() => void writerCalls++, {
      onConnect: async () => ({ status: 401, headers: { 'WWW-Authenticate': 'Bearer' }, body: 'who are you?' }),
    });
    const res = await get(`${url}/`);
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers['www-authenticate'], 'Bearer');
    assert.equal(res.headers['content-type'], undefined, 'SSE defaults do not apply to a refusal');
    assert.equal(await text(res), 'who are you?');
    assert.equal(writerCalls, 0);
  });

  test('the tuple form, synchronous, also refuses', async () => {
    let writerCalls = 0;
    const { url } = await serve(() => void writerCalls++, { onConnect: () => [403, { 'x-reason': 'nope' }] });
    const res = await get(url);
    assert.equal(res.statusCode, 403);
    assert.equal(res.headers['x-reason'], 'nope');
    assert.equal(await text(res), '');
    assert.equal(writerCalls, 0);
  });

  test('204 answers with no body', async () => {
    const { url } = await serve(() => {}, { onConnect: () => ({ status: 204, body: 'ignored' }) });
    const res = await get(url);
    assert.equal(res.statusCode, 204);
    assert.equal(await text(res), '');
  });

  test('200 headers are merged over the defaults, case-insensitively', async () => {
    const { url } = await serve((_req, stream) => stream.send({ data: 'hi' }), {
      onConnect: async () => [200, { 'X-Trace': 'abc', 'cache-control': 'private, no-transform' }],
    });
    const res = await get(url);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-trace'], 'abc');
    assert.equal(res.headers['cache-control'], 'private, no-transform');
    assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
    await text(res);
  });

  test('a throwing onConnect answers 500 and is logged; the server goes on', async () => {
    const { lines, logger } = recordingLogger();
    let fail = true;
    const { url } = await serve((_req, stream) => stream.send({ data: 'ok' }), {
      logger,
      onConnect: (request) => {
        if (fail) throw new Error('database down');
        return defaultOnConnect(request);
      },
    });
    const res = await get(url);
    assert.equal(res.statusCode, 500);
    await text(res);
    assert.equal(lines[0]?.level, 'error');
    assert.match((lines[0]?.obj as Error).message, /database down/);
    fail = false;
    const reader = await openEvents(url);
    await reader.until(() => reader.events.length === 1);
  });

  test('a client that leaves while onConnect decides gets nothing, and the writer never runs', async () => {
    let writerCalls = 0;
    let decided = false;
    const { url } = await serve(() => void writerCalls++, {
      onConnect: async () => {
        await sleep(200);
        decided = true;
        return [200];
      },
    });
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    socket.destroy();
    await waitFor(() => decided, 5000, 'onConnect to finish');
    await sleep(50);
    assert.equal(writerCalls, 0);
  });

  test('a malformed result is a 500 with a TypeError naming the problem', async () => {
    const { lines, logger } = recordingLogger();
    const { url } = await serve(() => {}, { logger, onConnect: () => ({ status: 42 }) });
    const res = await get(url);
    assert.equal(res.statusCode, 500);
    await text(res);
    assert.ok(lines[0]?.obj instanceof TypeError);
    assert.match((lines[0].obj as Error).message, /status 42/);
  });

  test('a header value Node refuses is a 500, logged, whether onConnect answers at once or later; the server goes on', async () => {
    for (const late of [false, true]) {
      const { lines, logger } = recordingLogger();
      let bad = true;
      const { url } = await serve((_req, stream) => stream.send({ data: 'ok' }), {
        logger,
        onConnect: (request) => {
          const answer = bad ? { status: 200, headers: { 'x-note': 'a\nb' } } : defaultOnConnect(request);
          return late ? sleep(10).then(() => answer) : answer;
        },
      });
      // Bounded: a request left unanswered would otherwise wait for the runner's timeout.
      const res = await Promise.race([get(url), sleep(5000).then(() => assert.fail('no answer within 5 s'))]);
      assert.equal(res.statusCode, 500, late ? 'async onConnect' : 'sync onConnect');
      await text(res);
      assert.equal(lines[0]?.level, 'error');
      assert.match(String(lines[0]?.msg), /could not answer/);
      bad = false;
      const reader = await openEvents(url);
      await reader.until(() => reader.events.length === 1);
    }
  });
});

describe('the stream', () => {
  test('default headers go out at once, before any event', async () => {
    const { url } = await serve((_req, stream) => holdOpen(stream));
    const res = await get(url);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(res.headers['cache-control'], 'no-store, no-cache, must-revalidate, post-check=0, pre-check=0, no-transform');
    assert.equal(res.headers['x-accel-buffering'], 'no');
    assert.equal(res.headers.connection, 'keep-alive');
    res.destroy();
  });

  test('events arrive in order, and the stream ends when the writer returns', async () => {
    const { url } = await serve(async (_req, stream) => {
      await stream.send({ data: 'one', id: 1 });
      await sendEvent(stream, 'greeting', { hello: 'world' });
      await stream.comment('a note');
      await stream.write('data: raw\n\n');
    });
    const reader = await openEvents(url);
    await reader.until(() => reader.ended, 5000, 'end of stream');
    assert.deepEqual(
      reader.events.map(({ event, data, id }) => ({ event, data, id })),
      [
        { event: undefined, data: 'one', id: '1' },
        { event: 'greeting', data: '{"hello":"world"}', id: undefined },
        { event: undefined, data: 'raw', id: undefined },
      ],
    );
    assert.ok(reader.comments.includes('a note'));
  });

  test('retry is written once, first', async () => {
    const { url } = await serve((_req, stream) => stream.send({ data: 'x' }), { retry: 2500 });
    const res = await get(url);
    const body = await text(res);
    assert.ok(body.startsWith('retry: 2500\n\n'), body);
    assert.equal(body.match(/retry:/g)?.length, 1);
  });

  test('a throwing writer is logged with its stack, the stream ends, the server goes on', async () => {
    const { lines, logger } = recordingLogger();
    const { url } = await serve(
      async (req, stream) => {
        await stream.send({ data: 'before' });
        if ('url' in req && req.url === '/boom') throw new Error('writer exploded');
      },
      { logger },
    );
    const reader = await openEvents(`${url}/boom`);
    await reader.until(() => reader.ended, 5000, 'end of stream');
    assert.equal(reader.events.length, 1);
    const logged = lines.find((line) => line.level === 'error');
    assert.ok(logged?.obj instanceof Error);
    assert.match(logged.obj.stack ?? '', /writer exploded\n\s+at /);
    const next = await openEvents(`${url}/fine`);
    await next.until(() => next.ended && next.events.length === 1);
  });

  test('an async iterable writer streams its events and ends with them', async () => {
    const { url } = await serve(async function* () {
      yield { data: 'a' };
      yield { event: 'b', data: 'b' };
    });
    const reader = await openEvents(url);
    await reader.until(() => reader.ended);
    assert.deepEqual(reader.events.map((e) => e.data), ['a', 'b']);
  });

  test('an async iterable is stopped when the client leaves', async () => {
    let finished = false;
    const { url } = await serve(async function* (_req, stream) {
      try {
        for (let i = 0; ; i++) {
          yield { data: String(i) };
          await sleep(10, undefined, { signal: stream.signal }).catch(() => {});
        }
      } finally {
        finished = true;
      }
    });
    const reader = await openEvents(url);
    await reader.until(() => reader.events.length >= 3);
    reader.res.destroy();
    await waitFor(() => finished, 5000, 'the generator to finish');
  });

  test('an invalid event rejects send with a TypeError and the stream stays usable', async () => {
    let rejection: unknown;
    const { url } = await serve(async (_req, stream) => {
      await stream.send({ event: 'bad\nevent', data: 'x' }).catch((error: unknown) => (rejection = error));
      await stream.send({ data: 'still here' });
    });
    const reader = await openEvents(url);
    await reader.until(() => reader.ended);
    assert.ok(rejection instanceof TypeError);
    assert.deepEqual(reader.events.map((e) => e.data), ['still here']);
  });

  test('close() from the server ends the response; later sends resolve without writing', async () => {
    let stream: SseStream | undefined;
    const { url } = await serve(async (_req, s) => {
      stream = s;
      await s.send({ data: 'one' });
      s.close();
      assert.equal(s.closed, true);
      assert.equal(s.signal.aborted, true);
      await s.send({ data: 'two' });
      await holdOpen(s);
    });
    const reader = await openEvents(url);
    await reader.until(() => reader.ended);
    assert.deepEqual(reader.events.map((e) => e.data), ['one']);
    assert.equal(stream?.closed, true);
  });

  test('a client that leaves aborts the signal and closes the stream', async () => {
    let stream: SseStream | undefined;
    const { url } = await serve((_req, s) => {
      stream = s;
      return holdOpen(s);
    });
    const reader = await openEvents(url);
    await waitFor(() => stream !== undefined);
    assert.equal(stream!.closed, false);
    reader.res.destroy();
    await waitFor(() => stream!.signal.aborted, 5000, 'signal to abort');
    assert.equal(stream!.closed, true);
  });

  test('HEAD gets the head a GET would get, and no stream: the writer never runs', async () => {
    let calls = 0;
    const handler = serveSse(
      (_req, stream) => {
        calls++;
        return holdOpen(stream);
      },
      { logger: recordingLogger().logger },
    );
    const running = await listen(handler);
    servers.push(running);
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${running.url}/`, { method: 'HEAD', agent: false, headers: { connection: 'close' } }, resolve);
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] ?? '', /^text\/event-stream/);
    assert.equal(await text(res), '');
    const viaFetch = await handler.fetch(new Request('http://x/', { method: 'HEAD' }));
    assert.equal(viaFetch.status, 200);
    assert.match(viaFetch.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(viaFetch.body, null);
    assert.equal(calls, 0);
  });

  test('lastEventId comes from the header, else from the query parameter', async () => {
    const seen: Array<string | undefined> = [];
    const { url } = await serve((_req, stream) => void seen.push(stream.lastEventId));
    await text(await get(url, { 'last-event-id': 'from-header' }));
    await text(await get(`${url}/?lastEventId=from-query`));
    await text(await get(`${url}/?lastEventId=q`, { 'last-event-id': 'h' }));
    await text(await get(url));
    assert.deepEqual(seen, ['from-header', 'from-query', 'h', undefined]);
  });
});

describe('keep-alive', () => {
  test('idle streams get comments, all from one shared timer', async () => {
    const { url } = await serve((_req, stream) => holdOpen(stream), { keepAlive: 40 });
    // Counted once the server listens: it has timers of its own (connection checks).
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const readers = await Promise.all([openEvents(url), openEvents(url), openEvents(url)]);
    await Promise.all(readers.map((r) => r.until(() => r.comments.length >= 3, 5000, 'keep-alive comments')));
    assert.equal(sharedHeartbeat(40).size, 3);
    const timersDuring = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.ok(timersDuring - timersBefore <= 1, `one timer for all streams (before ${timersBefore}, during ${timersDuring})`);
    for (const r of readers) r.res.destroy();
    await waitFor(() => sharedHeartbeat(40).size === 0, 5000, 'streams to leave the heartbeat');
  });

  test('keepAlive: false sends none', async () => {
    const { url } = await serve((_req, stream) => holdOpen(stream), { keepAlive: false });
    const reader = await openEvents(url);
    await sleep(200);
    assert.deepEqual(reader.comments, ['']); // only the opening comment
    reader.res.destroy();
  });
});

describe('slow clients', () => {
  /** A raw client that sends the request and then never reads. */
  async function stalledClient(url: string): Promise<import('node:net').Socket> {
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    socket.pause();
    return socket;
  }

  test('"wait": send waits while the client is over the limit, and resumes when it reads', async () => {
    const chunk = 'x'.repeat(64 * 1024);
    let sent = 0;
    let stream: SseStream | undefined;
    let pending: Promise<void> | undefined;
    const { url } = await serve(
      async (_req, s) => {
        stream = s;
        // Fill until a send has to wait, bounded at 256 MiB in case nothing ever pushes back.
        while (sent < 4096) {
          const accepted = s.send({ data: chunk });
          sent++;
          const waited = await Promise.race([accepted.then(() => false), sleep(200).then(() => true)]);
          if (waited) {
            pending = accepted;
            break;
          }
        }
        await holdOpen(s);
      },
      { highWaterMark: 256 * 1024, onSlowClient: 'wait', keepAlive: false },
    );
    const socket = await stalledClient(url);
    await waitFor(() => pending !== undefined, 20_000, 'a send that waits');
    let resolved = false;
    void pending!.then(() => (resolved = true));
    await sleep(200);
    assert.equal(resolved, false, 'still waiting while the client reads nothing');
    socket.resume();
    socket.on('data', () => {});
    await waitFor(() => resolved, 10_000, 'the send to resolve once the client reads');
    assert.equal(stream!.closed, false);
    socket.destroy();
  });
});

describe('options are checked when the handler is made', () => {
  const bad: Array<[ServeSseOptions, RegExp]> = [
    [{ keepAlive: 0 }, /option keepAlive/],
    [{ keepAlive: -5 }, /option keepAlive/],
    [{ retry: -1 }, /option retry/],
    [{ highWaterMark: 0 }, /option highWaterMark/],
    [{ onSlowClient: 'ignore' as 'wait' }, /option onSlowClient/],
    [{ onConnect: 'yes' as never }, /option onConnect/],
    [{ logger: {} as never }, /option logger/],
    [{ maxLastEventIdLength: 0 }, /option maxLastEventIdLength/],
  ];
  for (const [options, message] of bad) {
    test(`rejects ${JSON.stringify(options)}`, () => {
      assert.throws(() => serveSse(() => {}, options), (error: unknown) => error instanceof TypeError && message.test(error.message));
    });
  }
  test('rejects a writer that is not a function', () => {
    assert.throws(() => serveSse('nope' as never), TypeError);
  });
});
