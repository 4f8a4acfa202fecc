/**
 * What protocols build on the hub: ids chosen by publishers, private events, matchers, resuming
 * by a publisher's id, `fromEarliest`, and the internals a protocol uses before it answers.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createHub, serveSse, type Hub, type ResetData } from '../../src/index.js';
import { HUB_INTERNALS, type HubInternals } from '../../src/hub/hub.js';
import type { Interest, PrivateAccess, TopicMatcher } from '../../src/hub/interest.js';
import { listen, openEvents, recordingLogger, waitFor, type EventReader, type Running } from '../helpers.js';

const servers: Running[] = [];
after(() => Promise.all(servers.map((server) => server.close())));

/** A prefix matcher, standing in for a protocol's patterns. */
function prefix(text: string): TopicMatcher & { calls: number } {
  const matcher = {
    key: `prefix:${text}`,
    calls: 0,
    matches(topic: string) {
      matcher.calls++;
      return topic.startsWith(text);
    },
  };
  return matcher;
}

function allow(...topics: string[]): PrivateAccess {
  return { key: `allow:${topics.join(',')}`, allows: (topic) => topics.includes(topic) };
}

/** A hub and a server whose `/?as=<name>` subscribes with the interest registered under that name. */
async function serve(interests: Record<string, Interest>): Promise<{ hub: Hub; open(name: string, headers?: Record<string, string>): Promise<EventReader> }> {
  const hub = createHub({ logger: recordingLogger().logger });
  const handler = serveSse(async (request, stream) => {
    const name = new URL(request.url ?? '/', 'http://x').searchParams.get('as')!;
    const afterId = new URL(request.url ?? '/', 'http://x').searchParams.get('after') ?? undefined;
    hub.subscribe(stream, interests[name]!, afterId === 'earliest' ? { fromEarliest: true } : { after: afterId });
    await new Promise((resolve) => stream.signal.addEventListener('abort', resolve));
  }, { keepAlive: false });
  const running = await listen(handler);
  servers.push(running);
  return {
    hub,
    async open(name, headers = {}) {
      const before = hub.stats().connections;
      const reader = await openEvents(`${running.url}/?as=${name}`, headers);
      await waitFor(() => hub.stats().connections > before, 5000, `${name} to subscribe`);
      return reader;
    },
  };
}

const ids = (reader: EventReader): Array<string | undefined> => reader.events.map((event) => event.id);

describe('ids chosen by publishers', () => {
  test('go on the wire as given, publish returns them, and a client resumes by them', async () => {
    const { hub, open } = await serve({ t: { topics: ['t'] } });
    const live = await open('t');
    const first = await hub.publish('t', { data: 'one' }, { id: 'urn:uuid:first' });
    const second = await hub.publish('t', { data: 'two' });
    const third = await hub.publish('t', { data: 'three' }, { id: 'https://example.com/rev/3' });
    assert.equal(first, 'urn:uuid:first');
    assert.match(second, /^\d+-\d+$/, 'without an id, the log\'s');
    await live.until(() => live.events.length === 3);
    assert.deepEqual(ids(live), [first, second, third]);
    const resumed = await open('t', { 'last-event-id': first });
    await resumed.until(() => resumed.events.length === 2);
    assert.deepEqual(ids(resumed), [second, third]);
  });

  test('a duplicate id resolves to its earliest event', async () => {
    const { hub, open } = await serve({ t: { topics: ['t'] } });
    await hub.publish('t', { data: 'a' }, { id: 'dup' });
    await hub.publish('t', { data: 'b' });
    await hub.publish('t', { data: 'c' }, { id: 'dup' });
    const resumed = await open('t', { 'last-event-id': 'dup' });
    await resumed.until(() => resumed.events.length === 2);
    assert.deepEqual(resumed.events.map((event) => event.data), ['b', 'c']);
  });

  test('bad ids and options are refused with a TypeError naming them; nothing is published', async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    await assert.rejects(hub.publish('t', { data: 1 }, { id: 'a\nb' }), /publish option id/);
    await assert.rejects(hub.publish('t', { data: 1 }, { id: '' }), /publish option id/);
    await assert.rejects(hub.publish('t', { data: 1 }, { id: 'x'.repeat(1025) }), /publish option id/);
    await assert.rejects(hub.publish('t', { data: 1 }, { private: 'yes' as unknown as boolean }), /private must be a boolean/);
    await assert.rejects(hub.publish('t', { id: 'x', data: 1 }), /publish\(topics, event, \{ id \}\)/);
    assert.equal(hub.stats().published, 0);
  });
});

describe('private events', () => {
  test('reach only subscribers whose access allows one of their topics, live and in replays', async () => {
    const { hub, open } = await serve({
      anonymous: { topics: ['a', 'b'] },
      allowedA: { topics: ['a', 'b'], access: allow('a') },
      allowedOther: { topics: ['b'], access: allow('x') },
    });
    const anonymous = await open('anonymous');
    const allowedA = await open('allowedA');
    const allowedOther = await open('allowedOther');
    const pub = await hub.publish(['a', 'b'], { data: 'public' });
    const secret = await hub.publish(['b', 'a'], { data: 'secret' }, { private: true });
    const last = await hub.publish('b', { data: 'public again' });
    for (const reader of [anonymous, allowedA, allowedOther]) await reader.until(() => reader.events.at(-1)?.id === last);
    assert.deepEqual(ids(anonymous), [pub, last]);
    assert.deepEqual(ids(allowedA), [pub, secret, last], 'allowed by its alternate topic');
    assert.deepEqual(ids(allowedOther), [pub, last]);
    // Replays are authorized again, per subscriber.
    const replayAnonymous = await open('anonymous', { 'last-event-id': pub });
    const replayAllowed = await open('allowedA', { 'last-event-id': pub });
    await replayAllowed.until(() => replayAllowed.events.length === 2);
    await replayAnonymous.until(() => replayAnonymous.events.length === 1);
    assert.deepEqual(ids(replayAllowed), [secret, last]);
    assert.deepEqual(ids(replayAnonymous), [last]);
  });
});

describe('matchers', () => {
  test('a matcher subscriber gets matching topics, once per event, with exact subscribers beside it', async () => {
    const books = prefix('/books/');
    const { hub, open } = await serve({ books: { topics: ['/news'], matchers: [books] }, exact: { topics: ['/books/1'] } });
    const matcher = await open('books');
    const exact = await open('exact');
    await hub.publish('/books/1', { data: 'b1' });
    await hub.publish(['/books/2', '/books/3'], { data: 'b2 and b3' });
    await hub.publish('/news', { data: 'news' });
    await hub.publish('/films/1', { data: 'not a book' });
    await matcher.until(() => matcher.events.length === 3);
    await exact.until(() => exact.events.length === 1);
    assert.deepEqual(matcher.events.map((event) => event.data), ['b1', 'b2 and b3', 'news']);
    assert.deepEqual(exact.events.map((event) => event.data), ['b1']);
    assert.equal(hub.stats().topics, 3, 'two topics and one matcher');
  });

  test('subscribers of one matcher share it: it is asked once per topic of an event, not once per subscriber', async () => {
    const shared = prefix('/p/');
    const { hub, open } = await serve({ p: { topics: [], matchers: [shared] } });
    const readers = [await open('p'), await open('p'), await open('p')];
    const before = shared.calls;
    await hub.publish('/p/1', { data: 'x' });
    for (const reader of readers) await reader.until(() => reader.events.length === 1);
    assert.ok(shared.calls - before <= 4, `asked ${shared.calls - before} times for 3 subscribers`);
  });

  test('a replay for a matcher looks at the whole history, filtered; fromEarliest replays all of it', async () => {
    const { hub, open } = await serve({ books: { topics: [], matchers: [prefix('/books/')] } });
    const first = await hub.publish('/books/1', { data: '1' });
    await hub.publish('/films/1', { data: 'film' });
    await hub.publish('/books/2', { data: '2' });
    const resumed = await open('books', { 'last-event-id': first });
    await resumed.until(() => resumed.events.length === 1);
    assert.deepEqual(resumed.events.map((event) => event.data), ['2']);
    const all = await open('books&after=earliest');
    await all.until(() => all.events.length === 2);
    assert.deepEqual(all.events.map((event) => event.data), ['1', '2']);
  });

  test('an invalid interest is refused by name', () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const stream = { request: new Request('http://x/'), lastEventId: undefined, signal: new AbortController().signal, closed: false, dropped: 0, send: async () => {}, comment: async () => {}, write: async () => {}, close: () => {} };
    assert.throws(() => hub.subscribe(stream, { topics: [] }), /at least one topic or matcher/);
    assert.throws(() => hub.subscribe(stream, { topics: [], matchers: [{ key: 1 } as unknown as TopicMatcher] }), /matcher needs a key/);
    assert.throws(() => hub.subscribe(stream, { topics: ['t'], access: {} as PrivateAccess }), /access needs a key/);
  });
});

describe('internals for protocols', () => {
  test('anchor names the event a replay starts from, or the most recent before it the subscriber may see', async () => {
    const hub = createHub({ logger: recordingLogger().logger });
    const internals = (hub as unknown as Record<symbol, HubInternals>)[HUB_INTERNALS]!;
    const a1 = await hub.publish('a', { data: '1' }, { id: 'a1' });
    const secret = await hub.publish('a', { data: 's' }, { id: 'secret', private: true });
    await hub.publish('a', { data: '2' }, { id: 'a2' });
    const anonymous: Interest = { topics: ['a'] };
    const allowed: Interest = { topics: ['a'], access: allow('a') };
    assert.equal(internals.anchor('a1', anonymous), 'a1');
    // After the private event: the anonymous subscriber may not be told its id.
    assert.equal(internals.anchor('secret', anonymous), 'a1');
    assert.equal(internals.anchor('secret', allowed), secret);
    assert.equal(internals.anchor('unknown-id', anonymous), undefined);
    assert.equal(internals.anchor(undefined, anonymous), 'a2', 'no id: the newest it may see');
    assert.equal(a1, 'a1');
    await internals.caughtUp('a1');
    await internals.caughtUp('never-heard');
  });

  test('an unknown id a publisher might have chosen is a reset, after the instance has heard the log so far', async () => {
    const { hub, open } = await serve({ t: { topics: ['t'] } });
    await hub.publish('t', { data: 'x' });
    const reader = await open('t', { 'last-event-id': 'urn:uuid:nobody' });
    await reader.until(() => reader.events.length === 1);
    assert.equal(reader.events[0]!.event, 'reset');
    assert.equal((JSON.parse(reader.events[0]!.data) as ResetData).reason, 'unknown');
  });
});
