/** The hub server's other endpoints and its lifecycle, in-process through real HTTP. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, describe, test } from 'node:test';
import { ExpiryWatch } from '../../src/protocols/expiry.js';
import { openEvents, waitFor } from '../helpers.js';
import { closeAll, metric, PUBLISHER_KEY, publishJson, publisherToken, send, startHub } from './hub-helpers.js';

after(closeAll);

describe('endpoints', () => {
  test('GET /healthz answers 200 while serving', async () => {
    const hub = await startHub();
    const answer = await send(`${hub.url}/healthz`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'ok\n');
  });

  test('unknown paths get 404, wrong methods 405 with Allow', async () => {
    const hub = await startHub();
    const missing = await send(`${hub.url}/nope`);
    assert.equal(missing.status, 404);
    assert.match(missing.body, /no such endpoint: \/nope/);
    for (const [method, path, allow] of [['POST', '/events', 'GET'], ['GET', '/publish', 'POST'], ['DELETE', '/healthz', 'GET'], ['PUT', '/metrics', 'GET']] as const) {
      const answer = await send(`${hub.url}${path}`, { method });
      assert.equal(answer.status, 405, `${method} ${path}`);
      assert.match(String(answer.headers.allow), new RegExp(allow));
    }
  });

  test('GET /metrics: Prometheus text 0.0.4 with the hub counters, from hub.stats()', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const token = await publisherToken(['*']);
    const early = await publishJson(hub, token, { topic: 'm', data: 'early' });
    const a = await openEvents(`${hub.url}/events?topic=m`);
    const b = await openEvents(`${hub.url}/events?topic=m`, { 'last-event-id': early.body });
    await publishJson(hub, token, { topic: 'm', data: 'one' });
    await publishJson(hub, token, { topic: 'elsewhere', data: 'two' });
    await a.until(() => a.events.length === 1);
    await b.until(() => b.events.length === 1);
    await publishJson(hub, undefined, { topic: 'm', data: 'refused' });

    const answer = await send(`${hub.url}/metrics`);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const body = answer.body;
    const stats = hub.hub.stats();
    assert.equal(metric(body, 'serve_sse_connections'), 2);
    assert.equal(metric(body, 'serve_sse_published_total'), 3);
    assert.equal(metric(body, 'serve_sse_delivered_total'), stats.delivered);
    assert.equal(stats.delivered, 2);
    assert.equal(metric(body, 'serve_sse_replayed_total'), 0, 'nothing after the latest id');
    assert.equal(metric(body, 'serve_sse_dropped_total'), 0);
    assert.equal(metric(body, 'serve_sse_evicted_total'), 0);
    assert.equal(typeof metric(body, 'serve_sse_backplane_lag_seconds'), 'number');
    assert.equal(metric(body, 'serve_sse_http_responses_total{endpoint="/publish",code="200"}'), 3);
    assert.equal(metric(body, 'serve_sse_http_responses_total{endpoint="/publish",code="401"}'), 1);

    // The exposition format: HELP and TYPE once per family, before its samples; samples are `name{labels} number`.
    const declared = new Map<string, string>();
    for (const line of body.trimEnd().split('\n')) {
      const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
      if (meta !== null) {
        if (meta[1] === 'TYPE') {
          assert.ok(!declared.has(meta[2]!), `TYPE ${meta[2]} once`);
          assert.match(meta[3]!, /^(counter|gauge)$/);
          declared.set(meta[2]!, meta[3]!);
        }
        continue;
      }
      const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$/.exec(line);
      assert.ok(sample !== null, `a valid sample line: ${line}`);
      assert.ok(declared.has(sample[1]!), `${sample[1]} declared before its samples`);
      if (declared.get(sample[1]!) === 'counter') assert.match(sample[1]!, /_total$/);
    }
    for (const name of ['serve_sse_connections', 'serve_sse_published_total', 'serve_sse_delivered_total', 'serve_sse_dropped_total', 'serve_sse_replayed_total', 'serve_sse_evicted_total', 'serve_sse_backplane_lag_seconds']) {
      assert.ok(declared.has(name), name);
    }
    a.res.destroy();
    b.res.destroy();
  });

  test('replays show in the metrics', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const token = await publisherToken(['*']);
    const first = await publishJson(hub, token, { topic: 'r', data: '1' });
    await publishJson(hub, token, { topic: 'r', data: '2' });
    await publishJson(hub, token, { topic: 'r', data: '3' });
    const reader = await openEvents(`${hub.url}/events?topic=r`, { 'last-event-id': first.body });
    await reader.until(() => reader.events.length === 2);
    assert.equal(metric((await send(`${hub.url}/metrics`)).body, 'serve_sse_replayed_total'), 2);
    reader.res.destroy();
  });

  test('each publish is logged at debug level with its id and topics', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY });
    const answer = await publishJson(hub, await publisherToken(['*']), { topics: ['x', 'y'], event: 'e', data: 'd' });
    const line = hub.logs.find((entry) => entry.msg === 'published');
    assert.ok(line !== undefined);
    assert.equal(line.level, 20, 'debug');
    assert.equal(line.id, answer.body);
    assert.deepEqual(line.topics, ['x', 'y']);
  });
});

describe('graceful shutdown', () => {
  test('close(): every client gets the retry hint, streams end, and the port is released', async () => {
    const hub = await startHub({ shutdownRetry: 4321 });
    const readers = await Promise.all([1, 2, 3].map(() => openEvents(`${hub.url}/events?topic=a`)));
    await waitFor(() => hub.hub.stats().connections === 3);
    const started = Date.now();
    await hub.close();
    assert.ok(Date.now() - started < 2000, 'well within the shutdown timeout');
    for (const reader of readers) {
      await reader.until(() => reader.ended);
      assert.ok(reader.retry! >= 4321 && reader.retry! < 2 * 4321, `retry ${reader.retry} within [4321, 8642)`);
    }
    const { port } = new URL(hub.url);
    const socket = connect(Number(port), '127.0.0.1');
    const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'ECONNREFUSED');
    assert.ok(hub.logs.some((line) => line.msg === 'stopped'));
  });

  test('while shutting down, /healthz answers 503 and new subscribers are told when to come back', async () => {
    const hub = await startHub({ shutdownRetry: 1500 });
    // Requests begun before the shutdown are still served; these two finish after it begins.
    const raw = (path: string): Promise<string> => {
      const socket = connect(Number(new URL(hub.url).port), '127.0.0.1');
      socket.write(`GET ${path} HTTP/1.1\r\nHost: hub\r\n`);
      let received = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
      return new Promise((resolve) => {
        socket.on('close', () => resolve(received));
        setTimeout(() => socket.write('\r\n'), 150);
      });
    };
    await new Promise((resolve) => setTimeout(resolve, 20));
    const health = raw('/healthz');
    const events = raw('/events?topic=a');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closed = hub.close();
    const [healthAnswer, eventsAnswer] = await Promise.all([health, events]);
    assert.match(healthAnswer, /^HTTP\/1\.1 503 /);
    assert.match(healthAnswer, /shutting down/);
    assert.match(eventsAnswer, /^HTTP\/1\.1 200 /, 'a 200 stream, since EventSource gives up for good after an error status');
    assert.match(eventsAnswer, /retry: 1500/);
    await closed;
  });

  test('close() is bounded by the shutdown timeout even when a client never goes', async () => {
    const hub = await startHub({ shutdownTimeout: 500 });
    // A request that never finishes its headers keeps its connection busy.
    const socket = connect(Number(new URL(hub.url).port), '127.0.0.1');
    socket.write('GET /healthz HTTP/1.1\r\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    await hub.close();
    assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
    socket.destroy();
  });
});

describe('ExpiryWatch', () => {
  test('one timer for many items, grouped by second; cancelled items never expire', async () => {
    const expired: string[] = [];
    const watch = new ExpiryWatch<string>((item) => expired.push(item));
    const now = Math.floor(Date.now() / 1000);
    watch.watch('past', now - 1);
    // Two seconds on, not one: `now` is rounded down, so now + 1 may be a few ms away (and would
    // expire before the first look below); now + 2 is a second away at least.
    const cancel = watch.watch('cancelled', now + 2);
    watch.watch('soon-a', now + 2);
    watch.watch('soon-b', now + 2);
    watch.watch('far', now + 3600);
    cancel();
    await waitFor(() => expired.length >= 1, 500);
    assert.deepEqual(expired, ['past']);
    await waitFor(() => expired.length >= 3, 3500);
    assert.deepEqual(expired.sort(), ['past', 'soon-a', 'soon-b']);
    assert.equal(watch.size, 1);
    watch.stop();
    assert.equal(watch.size, 0);
  });
});
