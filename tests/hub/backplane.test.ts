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

  constructor(readonly preloaded: Array<{ topics: string[]; data: string }>) {}

  open(listener: LogListener): Promise<void> {
    this.listener = listener;
    // All of it, as from a log trimmed only approximately: the hub keeps its last `history`.
    for (const { topics, data } of this.preloaded) this.deliver(topics, formatEvent({ data }));
    return this.#opened;
  }

  release(): void {
    this.#release();
  }

  /** An entry as if another instance had appended it. */
  deliver(topics: readonly string[], body: string): string {
    // Several per millisecond, then the next millisecond: both parts of the id must order.
    if (++this.#seq > 2) {
      this.#ms++;
      this.#seq = 0;
    }
    const id = `${this.#ms}-${this.#seq}`;
    this.listener!.receive({ id, topics, body, time: Date.now() });
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

  test('an invalid backplane option is refused by name', () => {
    assert.throws(() => createHub({ backplane: {} as Backplane }), /hub option backplane/);
  });
});
