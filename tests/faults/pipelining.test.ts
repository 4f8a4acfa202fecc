/**
 * Issue 10, item 2: no subscription outlives its socket, whatever the client sends. Requests
 * pipelined on one connection queue behind the first response; Node never tells a queued
 * response that its socket closed, so anything started for it must watch the socket itself.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, describe, test } from 'node:test';
import { createHub, serveSse } from '../../src/index.js';
import { listen, recordingLogger, waitFor, type Running } from '../helpers.js';
import { eventsRequest, rawSocket } from './clients.js';

const servers: Running[] = [];
after(() => Promise.all(servers.map((server) => server.close())));

describe('item 2: pipelined requests', () => {
  test('50 pipelined subscriptions on one socket, then the socket closes: none stays in the hub', async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const running = await listen(hub.handler(), createServer());
    servers.push(running);
    const socket = await rawSocket(running.url);
    socket.write(Array.from({ length: 50 }, () => eventsRequest('/?topic=a')).join(''));
    // The first owns the socket; the others wait behind it, subscribed or not.
    await waitFor(() => hub.stats().connections >= 1, 5000, 'the first subscription');
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.destroy();
    await waitFor(() => hub.stats().connections === 0, 2000, `no subscription left; ${hub.stats().connections} remain`).catch(() => {
      assert.fail(`${hub.stats().connections} of 50 subscriptions outlived their socket`);
    });
    assert.equal(hub.stats().topics, 0);
  });

  test('a stream queued behind another opens when the first ends, and gets its events', async () => {
    // The first answer is short (one event), so the socket passes to the second request.
    const hub = createHub({ logger: recordingLogger().logger });
    const events = hub.handler();
    const once = serveSse(async (_request, stream) => void (await stream.send({ event: 'first', data: 'only' })), { keepAlive: false });
    const running = await listen((req, res) => (req.url === '/once' ? once(req, res) : events(req, res)));
    servers.push(running);
    const socket = await rawSocket(running.url);
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    socket.write(eventsRequest('/once') + eventsRequest('/?topic=b'));
    await waitFor(() => hub.stats().connections === 1, 5000, 'the queued stream to subscribe once it has the socket');
    const id = await hub.publish('b', { data: 'second' });
    await waitFor(() => received.includes(`id: ${id}`), 5000, 'the event on the second stream');
    assert.match(received, /event: first\ndata: only/);
    assert.equal((received.match(/HTTP\/1\.1 200 OK/g) ?? []).length, 2, 'two answers on one connection');
    socket.destroy();
    await waitFor(() => hub.stats().connections === 0, 2000, 'the subscription to end with its socket');
  });

  test('a serveSse writer of a queued request that never got its socket never runs, and nothing is kept', async () => {
    let writers = 0;
    let opened = 0;
    const handler = serveSse(
      async (_request, stream) => {
        writers++;
        opened++;
        await new Promise((resolve) => stream.signal.addEventListener('abort', resolve));
        opened--;
      },
      { keepAlive: false },
    );
    const running = await listen(handler);
    servers.push(running);
    const socket = await rawSocket(running.url);
    socket.write(Array.from({ length: 20 }, () => eventsRequest('/')).join(''));
    await waitFor(() => writers >= 1, 5000, 'the first writer');
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.destroy();
    await waitFor(() => opened === 0, 2000, `every writer to see its stream end; ${opened} still open`);
    assert.equal(writers, 1, 'only the request that owned the socket had a stream');
  });
});
