/** The hub through real servers and clients: topics, ids, replay, resets, isolation, shutdown. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { EventSource } from 'eventsource';
import { createHub, type Hub, type HubOptions, type ResetData, type SseStream } from '../../src/index.js';
import { get, listen, openEvents, recordingLogger, text, waitFor, type EventReader, type Running } from '../helpers.js';

const servers: Running[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function serveHub(options: HubOptions = {}): Promise<{ hub: Hub; url: string; running: Running }> {
  const hub = createHub({ logger: recordingLogger().logger, ...options });
  const running = await listen(hub.handler());
  servers.push(running);
  return { hub, url: running.url, running };
}

const ids = (reader: EventReader): string[] => reader.events.map((e) => e.id ?? '');
const datas = (reader: EventReader): string[] => reader.events.map((e) => e.data);

describe('publish and topics', () => {
  test('subscribers of a topic get its events with the ids publish returned, in order', async () => {
    const { hub, url } = await serveHub();
    const news = await openEvents(`${url}/events?topic=news`);
    const sport = await openEvents(`${url}/events?topic=sport`);
    await waitFor(() => hub.stats().connections === 2);
    const sent = [await hub.publish('news', { data: 'n1' }), await hub.publish('sport', { data: 's1' }), await hub.publish('news', { event: 'x', data: 'n2' })];
    await news.until(() => news.events.length === 2);
    await sport.until(() => sport.events.length === 1);
    assert.deepEqual(datas(news), ['n1', 'n2']);
    assert.deepEqual(ids(news), [sent[0], sent[2]]);
    assert.equal(news.events[1]!.event, 'x');
    assert.deepEqual(datas(sport), ['s1']);
    assert.deepEqual(ids(sport), [sent[1]]);
    // Ids are unique and increase in publication order.
    const seqs = sent.map((id) => Number(id.split('-')[1]));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    assert.equal(new Set(sent).size, 3);
  });

  test('an event published to several topics reaches a subscriber of several of them once', async () => {
    const { hub, url } = await serveHub();
    const both = await openEvents(`${url}/events?topic=a&topic=b&topic=c`);
    const onlyB = await openEvents(`${url}/events?topic=b`);
    await waitFor(() => hub.stats().connections === 2);
    await hub.publish(['a', 'b'], { data: 'ab' });
    await hub.publish(['c', 'a', 'b'], { data: 'cab' });
    await hub.publish(['z'], { data: 'nobody' });
    await both.until(() => both.events.length >= 2);
    await onlyB.until(() => onlyB.events.length >= 2);
    await sleep(100);
    assert.deepEqual(datas(both), ['ab', 'cab']);
    assert.deepEqual(datas(onlyB), ['ab', 'cab']);
    assert.equal(hub.stats().delivered, 4);
  });

  test('no topics means 204, so the client stops reconnecting', async () => {
    const { url } = await serveHub();
    const res = await get(`${url}/events`);
    assert.equal(res.statusCode, 204);
    const hub = createHub();
    const running = await listen(hub.handler({ topics: async () => [] }));
    servers.push(running);
    assert.equal((await get(running.url)).statusCode, 204);
  });

  test('onConnect refusals come before topics, which come from the app', async () => {
    const hub = createHub();
    const running = await listen(
      hub.handler({
        onConnect: (req) => ('headers' in req && (req.headers as Record<string, string>).authorization === 'ok' ? [200] : [401]),
        topics: () => ['private'],
      }),
    );
    servers.push(running);
    assert.equal((await get(running.url)).statusCode, 401);
    const reader = await openEvents(`${running.url}/?topic=ignored`, { authorization: 'ok' });
    await waitFor(() => hub.stats().connections === 1);
    await hub.publish('ignored', { data: 'no' });
    await hub.publish('private', { data: 'yes' });
    await reader.until(() => reader.events.length === 1);
    assert.deepEqual(datas(reader), ['yes']);
  });

  test('bad input is refused with an error that names it', async () => {
    const hub = createHub();
    await assert.rejects(hub.publish([], { data: 1 }).then(() => hub.publish(['', 'a'], { data: 1 })), /topics as non-empty strings/);
    await assert.rejects(hub.publish('a', { id: 'mine', data: 1 }), /assigns event ids/);
    await assert.rejects(hub.publish('a', { event: 'bad\n', data: 1 }), /event\.event/);
    assert.throws(() => createHub({ onSlowClient: 'wait' as 'drop' }), /cannot wait for one client/);
    assert.throws(() => createHub({ history: -1 }), /hub option history/);
    assert.equal(hub.stats().published, 1, 'only the valid publish counted');
  });
});

describe('history and replay', () => {
  test('a reconnecting client gets exactly what it missed, in order, then live events', async () => {
    const { hub, url } = await serveHub();
    const first = await openEvents(`${url}/?topic=t`);
    await waitFor(() => hub.stats().connections === 1);
    for (let i = 1; i <= 3; i++) await hub.publish('t', { data: `e${i}` });
    await hub.publish('other', { data: 'not yours' });
    await first.until(() => first.events.length === 3);
    first.res.destroy();
    await waitFor(() => hub.stats().connections === 0);
    for (let i = 4; i <= 6; i++) await hub.publish('t', { data: `e${i}` });
    const second = await openEvents(`${url}/?topic=t`, { 'last-event-id': first.events[2]!.id! });
    await second.until(() => second.events.length === 3);
    await hub.publish('t', { data: 'e7' });
    await second.until(() => second.events.length === 4);
    assert.deepEqual(datas(second), ['e4', 'e5', 'e6', 'e7']);
    assert.equal(hub.stats().replayed, 3);
  });

  test('a replay while events keep being published has no gap and no duplicate', async () => {
    const { hub, url } = await serveHub({ history: 5000 });
    let publishing = true;
    const published: string[] = [];
    const publisher = (async () => {
      // One event per event-loop turn, as events arrive from upstream in real apps.
      for (let i = 0; publishing && i < 20_000; i++) {
        published.push(await hub.publish('live', { data: String(i) }));
        await nextTurn();
      }
    })();
    await waitFor(() => published.length >= 200);
    const resumeFrom = published[99]!;
    const reader = await openEvents(`${url}/?topic=live`, { 'last-event-id': resumeFrom });
    await waitFor(() => published.length >= 600);
    publishing = false;
    await publisher;
    const expected = published.slice(100);
    await reader.until(() => reader.events.length >= expected.length, 10_000, 'every event after the resume point');
    assert.deepEqual(ids(reader), expected);
  });

  test('an id the hub cannot replay from gets a reset event, once', async () => {
    const { hub, url } = await serveHub({ history: 3 });
    const published: string[] = [];
    for (let i = 0; i < 6; i++) published.push(await hub.publish('t', { data: String(i) }));

    const stranger = await openEvents(`${url}/?topic=t`, { 'last-event-id': 'not-one-of-ours' });
    await stranger.until(() => stranger.events.length === 1);
    assert.equal(stranger.events[0]!.event, 'reset');
    assert.deepEqual(JSON.parse(stranger.events[0]!.data) as ResetData, { lastEventId: 'not-one-of-ours', reason: 'unknown' });
    assert.equal(stranger.events[0]!.id, published[5], 'the reset moves the client to the latest id');

    const tooOld = await openEvents(`${url}/?topic=t`, { 'last-event-id': published[1]! });
    await tooOld.until(() => tooOld.events.length === 1);
    assert.deepEqual(JSON.parse(tooOld.events[0]!.data) as ResetData, { lastEventId: published[1], reason: 'expired' });

    // The event just before the oldest one kept is still a known position: nothing was missed.
    const justInTime = await openEvents(`${url}/?topic=t`, { 'last-event-id': published[2]! });
    await justInTime.until(() => justInTime.events.length === 3);
    assert.deepEqual(datas(justInTime), ['3', '4', '5']);
    assert.equal(hub.stats().resets, 2);
  });

  test('events past historyMaxAge are not replayed', async () => {
    const { hub, url } = await serveHub({ historyMaxAge: 100 });
    const first = await hub.publish('t', { data: 'old' });
    await hub.publish('t', { data: 'old too' });
    await sleep(150);
    const reader = await openEvents(`${url}/?topic=t`, { 'last-event-id': first });
    await reader.until(() => reader.events.length === 1);
    assert.equal(reader.events[0]!.event, 'reset');
    assert.equal((JSON.parse(reader.events[0]!.data) as ResetData).reason, 'expired');
  });

  test('an EventSource whose connection drops resumes with no gap and no duplicate', async () => {
    const hub = createHub();
    const running = await listen(hub.handler({ retry: 50 }));
    servers.push(running);
    const source = new EventSource(`${running.url}/?topic=t`);
    const got: string[] = [];
    source.onmessage = (event) => got.push(event.data as string);
    await waitFor(() => hub.stats().connections === 1);
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      // Halfway, every connection is cut, as a proxy or a flaky network would.
      if (i === 10) running.server.closeAllConnections();
      sent.push(`e${i}`);
      await hub.publish('t', { data: `e${i}` });
      await sleep(10);
    }
    await waitFor(() => got.length >= 20, 10_000, 'all twenty events');
    source.close();
    assert.deepEqual(got, sent);
    assert.ok(hub.stats().replayed > 0, 'some events came by replay');
  });
});

describe('isolation', () => {
  /** A raw client that asks for a stream and never reads a byte. */
  async function stalledClient(url: string, path: string): Promise<Socket> {
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    socket.pause();
    return socket;
  }

  test('a client that stops reading is disconnected; the fast one gets every event of 1 KiB (2,000 and more)', async () => {
    const { hub, url } = await serveHub({ highWaterMark: 64 * 1024 });
    const slow = await stalledClient(url, '/?topic=t');
    const fast = await openEvents(`${url}/?topic=t`);
    await waitFor(() => hub.stats().connections === 2);
    const heapBefore = process.memoryUsage().heapUsed;
    const payload = 'x'.repeat(1024);
    const started = Date.now();
    // At least 2,000 events, and on until the stalled client's kernel buffers are full and it
    // has been disconnected (loopback buffers hold megabytes), bounded at 30,000.
    let published = 0;
    while (published < 30_000 && (published < 2000 || hub.stats().evicted === 0)) {
      await hub.publish('t', { data: payload });
      published++;
      await nextTurn();
    }
    await fast.until(() => fast.events.length === published, 30_000, 'all events at the fast client');
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 20_000, `took ${elapsed} ms for ${published} events`);
    assert.equal(hub.stats().evicted, 1);
    assert.equal(hub.stats().connections, 1);
    const grown = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grown < 32 * 1024 * 1024, `heap grew ${grown} bytes`);
    slow.destroy();
  });

  test('"drop" keeps the slow client and counts what it missed', async () => {
    const { hub, url } = await serveHub({ highWaterMark: 16 * 1024, onSlowClient: 'drop' });
    const slow = await stalledClient(url, '/?topic=t');
    await waitFor(() => hub.stats().connections === 1);
    const payload = 'y'.repeat(1024);
    for (let i = 0; i < 10_000 && hub.stats().dropped === 0; i++) {
      await hub.publish('t', { data: payload });
      if (i % 50 === 0) await nextTurn();
    }
    assert.ok(hub.stats().dropped > 0);
    assert.equal(hub.stats().connections, 1);
    slow.destroy();
  });

  test('"drop": a client that reads again gets a reset for what it missed, before the next event', async () => {
    const { hub, url } = await serveHub({ highWaterMark: 16 * 1024, onSlowClient: 'drop', slowClientTimeout: 100, maxBuffered: 64 * 1024 });
    const reader = await openEvents(`${url}/?topic=t`);
    reader.res.pause();
    await waitFor(() => hub.stats().connections === 1);
    const published: string[] = [];
    const payload = 'z'.repeat(1024);
    for (let i = 0; i < 20_000 && hub.stats().dropped === 0; i++) {
      published.push(await hub.publish('t', { data: payload }));
      if (i % 50 === 0) await nextTurn();
    }
    assert.ok(hub.stats().dropped > 0, 'events were dropped');
    reader.res.resume();
    // Once it has drained, the next event comes after a reset that covers the ones it missed.
    await sleep(300);
    published.push(await hub.publish('t', { data: 'after' }));
    await reader.until(() => reader.events.at(-1)?.data === 'after', 10_000, 'the event after the drops');
    const resetAt = reader.events.findIndex((event) => event.event === 'reset');
    assert.ok(resetAt > 0, 'a reset');
    const reset = reader.events[resetAt]!;
    const data = JSON.parse(reset.data) as ResetData;
    const before = ids(reader).slice(0, resetAt);
    assert.equal(data.reason, 'dropped');
    assert.deepEqual(before, published.slice(0, before.length), 'every event up to the drops, in order');
    assert.equal(data.lastEventId, before.at(-1), 'the reset names the last event the client had');
    // Everything after the reset's id arrives: nothing is lost without a word.
    const after = ids(reader).slice(resetAt + 1);
    assert.deepEqual(after, published.slice(published.indexOf(reset.id!) + 1));
    assert.equal(hub.stats().resets, 1);
    reader.res.destroy();
  });
});

describe('lifecycle', () => {
  test('close({ retry }) sends the hint, ends every stream and resolves when they are gone', async () => {
    const hub = createHub();
    const running = await listen(hub.handler());
    const readers = await Promise.all([1, 2, 3].map(() => openEvents(`${running.url}/?topic=t`)));
    await waitFor(() => hub.stats().connections === 3);
    await hub.close({ retry: 7000 });
    for (const reader of readers) {
      await reader.until(() => reader.ended);
      assert.equal(reader.retry, 7000);
    }
    assert.equal(hub.stats().connections, 0);
    await assert.rejects(hub.publish('t', { data: 1 }), /hub is closed/);
    // A stream subscribed after close is ended at once, not left open with nothing to come.
    let ended = false;
    const late = await openEvents(`${running.url}/?topic=t`);
    await late.until(() => late.ended);
    const stream: SseStream = {
      request: new Request('http://x/'),
      lastEventId: undefined,
      signal: new AbortController().signal,
      closed: false,
      dropped: 0,
      send: () => Promise.resolve(),
      comment: () => Promise.resolve(),
      write: () => Promise.resolve(),
      close: () => void (ended = true),
    };
    hub.subscribe(stream, ['t']);
    assert.equal(ended, true);
    // The recipe: with the streams ended, server.close() can finish.
    await new Promise<void>((resolve, reject) => running.server.close((error) => (error ? reject(error) : resolve())));
  });

  test('close({ retryJitter }) spreads the hints; a client that reads nothing is cut at the timeout', async () => {
    const { logger, lines } = recordingLogger();
    const hub = createHub({ onSlowClient: 'drop', highWaterMark: 64 * 1024 * 1024, logger });
    const running = await listen(hub.handler());
    servers.push(running);
    const readers = await Promise.all(Array.from({ length: 8 }, () => openEvents(`${running.url}/?topic=t`)));
    // A client that stops reading, with more queued for it than the kernel's buffers hold.
    const { port } = new URL(running.url);
    const stalled: Socket = connect(Number(port), '127.0.0.1');
    await once(stalled, 'connect');
    stalled.write('GET /?topic=big HTTP/1.1\r\nHost: x\r\n\r\n');
    stalled.pause();
    await waitFor(() => hub.stats().connections === 9);
    const big = 'x'.repeat(1024 * 1024);
    for (let i = 0; i < 24; i++) await hub.publish('big', { data: big });
    stalled.on('error', () => {}); // the cut may reach it as a reset
    const started = Date.now();
    await hub.close({ retry: 1000, retryJitter: 4000, timeout: 300 });
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 3000, `close() took ${took} ms`);
    assert.ok(lines.some((line) => line.level === 'warn' && /cutting their connections/.test(line.msg ?? '')));
    // Cut, not just ended: with its connection gone, server.close() can finish.
    await new Promise<void>((resolve, reject) => running.server.close((error) => (error ? reject(error) : resolve())));
    stalled.destroy();
    for (const reader of readers) await reader.until(() => reader.ended, 10_000);
    const hints = readers.map((reader) => reader.retry!);
    for (const hint of hints) assert.ok(hint >= 1000 && hint < 5000, `retry ${hint}`);
    assert.ok(new Set(hints).size > 1, `spread: ${hints.join(', ')}`);
    await assert.rejects(hub.close({ retryJitter: -1 }), /retryJitter/);
  });

  test('2,000 connect/disconnect cycles leave no subscription behind', async () => {
    const { hub, url } = await serveHub();
    for (let i = 0; i < 2000; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => get(`${url}/?topic=a&topic=b`)));
      for (const res of batch) res.destroy();
    }
    await waitFor(() => hub.stats().connections === 0, 10_000, 'every subscription to go');
    assert.deepEqual({ connections: hub.stats().connections, topics: hub.stats().topics }, { connections: 0, topics: 0 });
    await text(await get(`${url}/`));
  });
});
