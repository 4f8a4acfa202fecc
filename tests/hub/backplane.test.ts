/**
 * The hub against the Backplane contract, with a scripted log standing in for another process's
 * instances: ids from the log, entries from elsewhere, history loaded before subscribers join,
 * gaps, and a log that refuses appends. Redis itself is tested in tests/backplanes.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHub, formatEvent, type Backplane, type LogListener, type ResetData } from '../../src/index.js';
import { listen, openEvents, recordingLogger, waitFor, type Running } from '../helpers.js';

const servers: Running[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

/** A log whose ids look like Redis stream ids, and whose opening the test releases. */
class ScriptedLog implements Backplane {
  connected = true;
  listener: LogListener | undefined;
  readonly appended: Array<{ topics: readonly string[]; body: string }> = [];
  #ms = 1_700_000_000_000;
  #seq = 0;
  #release!: () => void;
  readonly #opened = new Promise<void>((resolve) => (this.#release = resolve));
  fail: Error | undefined;
  closed = false;
  /** As a log that can lag behind (Redis): ids this instance has not heard may be ahead. */
  lags = false;

  constructor(readonly preloaded: Array<{ topics: string[]; data: string; time?: number }>) {}

  mayBeAhead(): boolean {
    return this.lags;
  }

  /** The id the next entry will get. */
  nextId(): string {
    return this.#seq + 1 > 2 ? `${this.#ms + 1}-0` : `${this.#ms}-${this.#seq + 1}`;
  }

  open(listener: LogListener): Promise<void> {
    this.listener = listener;
    // All of it, as from a log trimmed only approximately: the hub keeps its last `history`.
    for (const { topics, data, time } of this.preloaded) this.deliver(topics, formatEvent({ data }), time);
    return this.#opened;
  }

  release(): void {
    this.#release();
  }

  /** An entry as if another instance had appended it. */
  deliver(topics: readonly string[], body: string, time = Date.now()): string {
    // Several per millisecond, then the next millisecond: both parts of the id must order.
    if (++this.#seq > 2) {
      this.#ms++;
      this.#seq = 0;
    }
    const id = `${this.#ms}-${this.#seq}`;
    this.listener!.receive({ id, topics, body, time });
    return id;
  }

  append(topics: readonly string[], body: string): Promise<string> {
    if (this.fail !== undefined) return Promise.reject(this.fail);
    this.appended.push({ topics, body });
    // Asynchronous, as a network log is.
    return sleep(1).then(() => this.deliver(topics, body));
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

async function serve(log: ScriptedLog, history = 1000) {
  const { logger, lines } = recordingLogger();
  const hub = createHub({ backplane: log, history, logger });
  const running = await listen(hub.handler());
  servers.push(running);
  return { hub, url: running.url, lines };
}

describe('a hub on a backplane', () => {
  test('clients wait for the shared history, then resume from an id another instance sent', async () => {
    const log = new ScriptedLog([1, 2, 3, 4].map((n) => ({ topics: ['t'], data: `old ${n}` })));
    const { hub, url } = await serve(log);
    // The loaded history holds ids like 1700000000000-1; resume after the second.
    const second = '1700000000000-2';
    const pending = openEvents(`${url}/events?topic=t`, { 'last-event-id': second });
    await sleep(50);
    assert.equal(hub.stats().waiting, 1, 'nobody joins before the history is loaded: the subscription waits');
    assert.equal(hub.stats().connections, 1, 'a waiting subscription is an open one');
    log.release();
    const reader = await pending;
    await waitFor(() => hub.stats().waiting === 0, 5000, 'the subscription to join');
    await reader.until(() => reader.events.length === 2);
    assert.deepEqual(
      reader.events.map((e) => [e.id, e.data]),
      [
        ['1700000000001-0', 'old 3'],
        ['1700000000001-1', 'old 4'],
      ],
    );
    const fromElsewhere = log.deliver(['t'], formatEvent({ event: 'remote', data: 'live' }));
    const mine = await hub.publish('t', { data: 'mine' });
    await reader.until(() => reader.events.length === 4);
    assert.deepEqual(reader.events.slice(2).map((e) => [e.id, e.event, e.data]), [
      [fromElsewhere, 'remote', 'live'],
      [mine, undefined, 'mine'],
    ]);
    assert.deepEqual(log.appended, [{ topics: ['t'], body: 'data: mine\n\n' }]);
  });

  test('a subscriber that came while the history was loading gets what was published from then on, not before', async () => {
    // Stamped a minute ago: published long before anyone subscribed.
    const log = new ScriptedLog([1, 2].map((n) => ({ topics: ['t'], data: `old ${n}`, time: Date.now() - 60_000 })));
    const { hub, url } = await serve(log);
    const pending = openEvents(`${url}/events?topic=t`);
    await waitFor(() => hub.stats().waiting === 1, 5000, 'the subscription to be held');
    // Published elsewhere after it subscribed, and loaded with the history (Redis: XREVRANGE).
    const owed = log.deliver(['t'], formatEvent({ data: 'owed' }));
    log.release();
    const reader = await pending;
    await waitFor(() => hub.stats().waiting === 0, 5000, 'the subscription to join');
    const live = log.deliver(['t'], formatEvent({ data: 'live' }));
    await reader.until(() => reader.events.some((e) => e.id === live));
    assert.deepEqual(
      reader.events.map((e) => [e.id, e.data]),
      [
        [owed, 'owed'],
        [live, 'live'],
      ],
    );
  });

  test('an id between two known ones is unknown; one older than the history is expired', async () => {
    const log = new ScriptedLog([1, 2, 3, 4, 5].map((n) => ({ topics: ['t'], data: `e${n}` })));
    const { hub, url } = await serve(log, 3);
    log.release();
    await waitFor(() => hub.stats().history === 3);
    const cases: Array<[string, ResetData['reason']]> = [
      ['1700000000000-0', 'expired'],
      ['1700000000001-7', 'unknown'],
      ['1800000000000-0', 'unknown'],
      ['not-an-id', 'unknown'],
    ];
    for (const [lastEventId, reason] of cases) {
      const reader = await openEvents(`${url}/events?topic=t`, { 'last-event-id': lastEventId });
      await reader.until(() => reader.events.length === 1);
      assert.equal(reader.events[0]!.event, 'reset', lastEventId);
      assert.deepEqual(JSON.parse(reader.events[0]!.data) as ResetData, { lastEventId, reason });
      assert.equal(reader.events[0]!.id, '1700000000001-2', 'the reset moves the client to the latest id');
      reader.res.destroy();
    }
    // The id just before the oldest kept one still replays everything kept: nothing was missed.
    const edge = await openEvents(`${url}/events?topic=t`, { 'last-event-id': '1700000000000-2' });
    await edge.until(() => edge.events.length === 3);
    assert.deepEqual(edge.events.map((e) => e.data), ['e3', 'e4', 'e5']);
  });

  test('a gap in the log turns older ids into resets, and tells live clients before the next event', async () => {
    const log = new ScriptedLog([{ topics: ['t'], data: 'before' }]);
    const { hub, url, lines } = await serve(log);
    log.release();
    await waitFor(() => hub.stats().history === 1);
    const live = await openEvents(`${url}/events?topic=other`);
    await waitFor(() => hub.stats().connections === 1);
    log.listener!.lost();
    const after = log.deliver(['t'], formatEvent({ data: 'after' }));
    await live.until(() => live.events.length === 1);
    assert.equal(live.events[0]!.event, 'reset');
    assert.deepEqual(JSON.parse(live.events[0]!.data) as ResetData, { lastEventId: '1700000000000-1', reason: 'expired' });
    assert.equal(live.events[0]!.id, after, 'resuming from the reset starts at the first event after the gap');
    assert.equal(hub.stats().gaps, 1);
    const reader = await openEvents(`${url}/events?topic=t`, { 'last-event-id': '1700000000000-1' });
    await reader.until(() => reader.events.length === 1);
    assert.equal(reader.events[0]!.event, 'reset');
    assert.equal(reader.events[0]!.id, after);
    assert.ok(lines.some((line) => line.level === 'warn' && /lost events/.test(line.msg ?? '')));
  });

  test('publish rejects with the backplane error, counts nothing, and serving goes on', async () => {
    const log = new ScriptedLog([]);
    const { hub, url } = await serve(log);
    log.release();
    const reader = await openEvents(`${url}/events?topic=t`);
    await waitFor(() => hub.stats().connections === 1);
    log.fail = new Error('log unreachable');
    log.connected = false;
    await assert.rejects(hub.publish('t', { data: 'x' }), /log unreachable/);
    assert.equal(hub.stats().published, 0);
    assert.equal(hub.stats().backplaneConnected, false);
    log.fail = undefined;
    log.connected = true;
    const id = await hub.publish('t', { data: 'y' });
    await reader.until(() => reader.events.length === 1);
    assert.deepEqual([reader.events[0]!.id, reader.events[0]!.data], [id, 'y']);
    assert.equal(hub.stats().published, 1);
    await hub.close();
    assert.equal(log.closed, true, 'hub.close() closes the backplane');
  });

  test('a subscription cancelled while the history loads never joins', async () => {
    const log = new ScriptedLog([]);
    const { hub } = await serve(log);
    const closed = new AbortController();
    const stream = {
      request: new Request('http://x/'),
      lastEventId: undefined,
      signal: closed.signal,
      closed: false,
      dropped: 0,
      send: () => Promise.resolve(),
      comment: () => Promise.resolve(),
      write: () => Promise.resolve(),
      close: () => undefined,
    };
    hub.subscribe(stream, ['t']).unsubscribe();
    const kept = hub.subscribe({ ...stream }, ['t']);
    log.release();
    await waitFor(() => hub.stats().connections === 1);
    kept.unsubscribe();
    assert.equal(hub.stats().connections, 0);
  });

  test('a client resuming from an id this instance has not heard yet waits, then joins exactly after it', async () => {
    const log = new ScriptedLog([{ topics: ['t'], data: 'old' }]);
    log.lags = true;
    const { hub, url } = await serve(log);
    log.release();
    const ahead = log.nextId();
    const reader = await openEvents(`${url}/events?topic=t`, { 'last-event-id': ahead });
    await waitFor(() => hub.stats().waiting === 1, 5000, 'the subscription to wait');
    assert.equal(hub.stats().connections, 1);
    const heard = log.deliver(['t'], formatEvent({ data: 'the client had this one' }));
    assert.equal(heard, ahead);
    assert.equal(hub.stats().waiting, 0, 'joined once the instance heard its id');
    const next = log.deliver(['t'], formatEvent({ data: 'new' }));
    await reader.until(() => reader.events.length === 1);
    await sleep(50);
    assert.deepEqual(reader.events.map((e) => [e.id, e.event, e.data]), [[next, undefined, 'new']], 'no reset, no duplicate');
    assert.equal(hub.stats().resets, 0);
  });

  test('an id that the log passes without this instance hearing it was not the log\'s: reset, then live events', async () => {
    const log = new ScriptedLog([{ topics: ['t'], data: 'old' }]);
    log.lags = true;
    const { hub, url } = await serve(log);
    log.release();
    // Sequence 9 of the next millisecond: the scripted log never makes it.
    const never = `${log.nextId().split('-')[0]}-9`;
    const reader = await openEvents(`${url}/events?topic=t`, { 'last-event-id': never });
    await waitFor(() => hub.stats().waiting === 1);
    let passed = '';
    for (let n = 0; n < 4 && hub.stats().waiting === 1; n++) passed = log.deliver(['t'], formatEvent({ data: `e${n}` }));
    const live = log.deliver(['t'], formatEvent({ data: 'live' }));
    await reader.until(() => reader.events.length === 2);
    assert.deepEqual(reader.events.map((e) => [e.id, e.event]), [[passed, 'reset'], [live, undefined]]);
    assert.deepEqual(JSON.parse(reader.events[0]!.data) as ResetData, { lastEventId: never, reason: 'unknown' });
  });

  test('the wait is bounded by catchUpTimeout: the stream ends and the client comes back', async () => {
    const log = new ScriptedLog([]);
    log.lags = true;
    const { logger, lines } = recordingLogger();
    const hub = createHub({ backplane: log, logger, catchUpTimeout: 200 });
    const running = await listen(hub.handler());
    servers.push(running);
    log.release();
    const started = Date.now();
    const reader = await openEvents(`${running.url}/events?topic=t`, { 'last-event-id': '1900000000000-0' });
    await reader.until(() => reader.ended, 5000, 'the stream to end');
    const took = Date.now() - started;
    assert.ok(took >= 150 && took < 2000, `ended after ${took} ms`);
    assert.deepEqual(reader.events, [], 'no reset: the client keeps its id');
    assert.equal(hub.stats().connections, 0);
    assert.ok(lines.some((line) => line.level === 'warn' && /catch up/.test(line.msg ?? '')));
    assert.throws(() => createHub({ catchUpTimeout: 0 }), /catchUpTimeout/);
  });

  test('close() ends subscriptions still waiting (for the history, or to catch up) with the retry hint', async () => {
    const log = new ScriptedLog([]);
    log.lags = true;
    const { hub, url } = await serve(log);
    // Not released: these wait for the history.
    const loading = await Promise.all([1, 2, 3].map(() => openEvents(`${url}/events?topic=t`)));
    await waitFor(() => hub.stats().waiting === 3);
    log.release();
    await waitFor(() => hub.stats().waiting === 0);
    const catching = await openEvents(`${url}/events?topic=t`, { 'last-event-id': '1900000000000-0' });
    await waitFor(() => hub.stats().waiting === 1);
    const log2 = new ScriptedLog([]);
    const second = await serve(log2);
    const waiting = await Promise.all([1, 2].map(() => openEvents(`${second.url}/events?topic=t`)));
    await waitFor(() => second.hub.stats().waiting === 2);
    const started = Date.now();
    await Promise.all([hub.close({ retry: 1234 }), second.hub.close({ retry: 4321 })]);
    assert.ok(Date.now() - started < 1000, `close() took ${Date.now() - started} ms`);
    for (const reader of [...loading, catching]) {
      await reader.until(() => reader.ended);
      assert.equal(reader.retry, 1234);
    }
    for (const reader of waiting) {
      await reader.until(() => reader.ended);
      assert.equal(reader.retry, 4321);
    }
    assert.equal(second.hub.stats().connections, 0);
  });

  test('an invalid backplane option is refused by name', () => {
    assert.throws(() => createHub({ backplane: {} as Backplane }), /hub option backplane/);
  });
});
