/**
 * The format is checked against eventsource-parser, an independent implementation of the WHATWG
 * parsing rules: whatever we emit must parse back to exactly what was given, and nothing more.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { formatEvent, type SseEvent } from '../src/index.js';

interface Parsed {
  events: EventSourceMessage[];
  comments: string[];
  retries: number[];
}

/**
 * Encodes text as UTF-8 and feeds it to the parser in pieces cut at arbitrary byte offsets, as a
 * network would deliver it (a cut may fall inside a multi-byte character or between CR and LF).
 */
function parse(text: string, cuts: number[] = []): Parsed {
  const parsed: Parsed = { events: [], comments: [], retries: [] };
  const parser = createParser({
    onEvent: (event) => parsed.events.push(event),
    onComment: (comment) => parsed.comments.push(comment),
    onRetry: (retry) => parsed.retries.push(retry),
  });
  const bytes = new TextEncoder().encode(text);
  const decoder = new TextDecoder();
  let start = 0;
  for (const cut of [...cuts.map((c) => c % (bytes.length + 1))].sort((a, b) => a - b)) {
    parser.feed(decoder.decode(bytes.subarray(start, cut), { stream: true }));
    start = cut;
  }
  parser.feed(decoder.decode(bytes.subarray(start)));
  return parsed;
}

/** What a client must see for data `value`: every line-break form becomes LF; UTF-8 repairs lone surrogates. */
function expectedData(value: string): string {
  return value.replace(/\r\n|\r|\n/g, '\n').toWellFormed();
}

// Strings rich in what breaks SSE: every line-break form, NUL, colons, spaces, BOMs, astral
// characters and lone surrogates, mixed with arbitrary code units.
const hostileChar = fc.constantFrom('\r', '\n', '\r\n', '\n\r', '\0', ':', ' ', '\uFEFF', '😀', '\uD800', 'data: x', 'id: 1', 'é');
const hostileString = fc
  .array(fc.oneof(hostileChar, fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' })), { maxLength: 12 })
  .map((parts) => parts.join(''));
const safeLine = hostileString.map((s) => s.replace(/[\r\n]/g, ''));
const safeId = hostileString.map((s) => s.replace(/[\r\n\0]/g, ''));
const cuts = fc.array(fc.nat(), { maxLength: 4 });

describe('formatEvent round-trips through an independent parser', () => {
  test('any string data arrives as one event, line breaks normalised, nothing injected', () => {
    fc.assert(
      fc.property(hostileString, cuts, (data, at) => {
        const { events } = parse(formatEvent({ data }), at);
        assert.equal(events.length, 1);
        assert.equal(events[0]!.data, expectedData(data));
        assert.equal(events[0]!.event, undefined);
        assert.equal(events[0]!.id, undefined);
      }),
      { numRuns: 3000 },
    );
  });

  test('every field together, as many events in one stream', () => {
    const event = fc.record(
      {
        data: hostileString,
        event: safeLine.filter((s) => s !== ''),
        id: fc.oneof(safeId, fc.integer()),
        retry: fc.nat(),
        comment: hostileString,
      },
      { requiredKeys: ['data'] },
    );
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 5 }), cuts, (input, at) => {
        const parsed = parse(':\n\n' + input.map((e) => formatEvent(e)).join(''), at);
        assert.equal(parsed.events.length, input.length);
        input.forEach((sent, i) => {
          const got = parsed.events[i]!;
          assert.equal(got.data, expectedData(sent.data));
          assert.equal(got.event, sent.event?.toWellFormed());
          // eventsource-parser reports the id set in each event's own block.
          assert.equal(got.id, sent.id === undefined ? undefined : String(sent.id).toWellFormed());
        });
        assert.deepEqual(parsed.retries, input.flatMap((e) => (e.retry === undefined ? [] : [e.retry])));
      }),
      { numRuns: 2000 },
    );
  });

  test('comments stay comments, one per line, and never dispatch an event', () => {
    fc.assert(
      fc.property(hostileString, (comment) => {
        const parsed = parse(formatEvent({ comment }));
        assert.equal(parsed.events.length, 0);
        const lines = comment.split(/\r\n|\r|\n/).map((line) => line.toWellFormed());
        assert.deepEqual(parsed.comments, lines);
      }),
      { numRuns: 2000 },
    );
  });

  test('non-string data is sent as JSON and parses back to an equal value', () => {
    fc.assert(
      fc.property(fc.jsonValue().filter((value) => typeof value !== 'string'), (value) => {
        const { events } = parse(formatEvent({ data: value }));
        assert.equal(events.length, 1);
        assert.deepEqual(JSON.parse(events[0]!.data), JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('formatEvent edge cases', () => {
  const cases: Array<[string, SseEvent, Partial<EventSourceMessage>]> = [
    ['empty data dispatches an empty event', { data: '' }, { data: '' }],
    ['a trailing line break keeps its empty line', { data: 'a\n' }, { data: 'a\n' }],
    ['a lone CR at the end is a line break', { data: 'a\r' }, { data: 'a\n' }],
    ['leading spaces survive', { data: '  two spaces' }, { data: '  two spaces' }],
    ['leading colon is data, not a comment', { data: ':not a comment' }, { data: ':not a comment' }],
    ['blank lines inside data are kept', { data: '\n\n' }, { data: '\n\n' }],
    ['NUL in data is data', { data: 'a\0b' }, { data: 'a\0b' }],
    ['numeric id', { id: 42, data: 'x' }, { id: '42', data: 'x' }],
    ['null is JSON', { data: null }, { data: 'null' }],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => {
      const { events } = parse(formatEvent(input));
      assert.equal(events.length, 1);
      assert.deepEqual({ ...events[0], ...expected }, events[0]);
    });
  }

  test('an event ends in exactly one blank line', () => {
    assert.ok(formatEvent({ data: 'x' }).endsWith('x\n\n'));
    assert.equal(formatEvent({}), '\n');
  });

  test('an event without data sets fields but dispatches nothing', () => {
    const parsed = parse(formatEvent({ id: '7', retry: 100, event: 'ignored' }) + formatEvent({ data: 'after' }));
    assert.equal(parsed.events.length, 1);
    assert.equal(parsed.events[0]!.data, 'after');
    // The event type belongs to the block it was set in.
    assert.equal(parsed.events[0]!.event, undefined);
    assert.deepEqual(parsed.retries, [100]);
  });

  test('an empty id resets the last event id', () => {
    const text = formatEvent({ id: 'a', data: '1' }) + formatEvent({ id: '', data: '2' });
    assert.match(text, /^id: $/m);
    assert.deepEqual(parse(text).events.map((e) => e.id), ['a', '']);
  });
});

describe('formatEvent refuses what it cannot send faithfully', () => {
  const invalid: Array<[string, unknown, RegExp]> = [
    ['event with LF', { event: 'a\nb' }, /event\.event must not contain CR or LF/],
    ['event with CR', { event: 'a\rdata: x' }, /event\.event/],
    ['event not a string', { event: 3 }, /event\.event must be a string/],
    ['id with LF', { id: '1\n' }, /event\.id must not contain CR, LF or NUL/],
    ['id with CR', { id: '1\r' }, /event\.id/],
    ['id with NUL', { id: '1\0' }, /event\.id/],
    ['id NaN', { id: Number.NaN }, /event\.id/],
    ['id object', { id: {} }, /event\.id/],
    ['retry negative', { retry: -1 }, /event\.retry must be a non-negative integer/],
    ['retry fraction', { retry: 1.5 }, /event\.retry/],
    ['retry string', { retry: '1000' }, /event\.retry/],
    ['retry infinite', { retry: Number.POSITIVE_INFINITY }, /event\.retry/],
    ['comment not a string', { comment: 1 }, /event\.comment/],
    ['data a function', { data: () => 1 }, /event\.data has no JSON representation/],
    ['data a bigint', { data: 1n }, /event\.data could not be serialised as JSON/],
    ['not an object', 'hello', /an event must be an object/],
    ['null', null, /an event must be an object/],
  ];
  for (const [name, input, message] of invalid) {
    test(name, () => {
      assert.throws(() => formatEvent(input as SseEvent), (error: unknown) => {
        assert.ok(error instanceof TypeError, 'a TypeError');
        assert.match(error.message, message);
        return true;
      });
    });
  }

  test('circular data names the field', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.throws(() => formatEvent({ data: circular }), /event\.data could not be serialised as JSON/);
  });
});
