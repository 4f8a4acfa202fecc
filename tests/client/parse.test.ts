/**
 * The client's stream parser (src/client/parse.ts) against an independent one, eventsource-parser,
 * on a corpus of byte streams, each fed whole, split at every byte offset (and at every pair of
 * offsets when short), one byte at a time, and in seeded random pieces (empty ones included).
 * Compared: the events dispatched (type, data, lastEventId), the last event ID string the stream
 * leaves, and the retry values. The bytes go through what the client does with them: a
 * `TextDecoder` in streaming mode (which takes off one leading BOM, as the spec's "UTF-8 decode"
 * says), directly into the parser, and also through the real fetch loop (Connection) with a
 * `fetch` that answers a stream of those chunks.
 *
 * Where the oracle cannot say, the expected values are written out from the WHATWG text
 * (html.spec.whatwg.org, "Server-sent events", §9.2.5–9.2.6):
 *  - eventsource-parser reports an event's own `id` field and forgets ids of blocks without data;
 *    the WHATWG last event ID buffer persists across events, and a blank line after a block with
 *    no data still sets the source's last event ID string. The oracle's lastEventId is therefore
 *    "the last id it reported", valid only for streams where every block with an `id` has data;
 *    the streams with id-only blocks carry their expected values literally.
 *  - eventsource-parser waits for the character after a CR before ending the line (it may be a
 *    CRLF); at the end of a stream there is none. Told the stream is over with an LF (CR LF is one
 *    line end, the same as CR alone), it finishes the line as the spec does.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createParser as oracleParser } from 'eventsource-parser';
import { createParser } from '../../src/client/parse.js';
import { Connection, type Sink } from '../../src/client/connection.js';

interface Seen {
  type: string;
  data: string;
  lastEventId: string;
}

interface Outcome {
  events: Seen[];
  /** The source's last event ID string once the stream is over. */
  lastEventId: string;
  retries: number[];
}

interface Case {
  name: string;
  text: string;
  /** For streams with id-only blocks (see above): what WHATWG says, written out. */
  expected?: Outcome;
}

const CORPUS: Case[] = [
  { name: 'LF', text: 'data: hello\n\ndata: world\n\n' },
  { name: 'CRLF', text: 'data: a\r\ndata: b\r\n\r\nevent: e\r\ndata: c\r\n\r\n' },
  { name: 'CR', text: 'data: a\rdata: b\r\revent: e\rdata: c\r\r' },
  { name: 'mixed line ends', text: 'data: 1\r\n\ndata: 2\r\rid: x\ndata: 3\n\r\ndata: 4\r\r\ndata: 5\n\r' },
  { name: 'CR CR LF: a line, then a blank line', text: 'data: a\r\r\ndata: b\r\n\r\r\n' },
  { name: 'leading BOM', text: '\uFEFFdata: bom\n\n' },
  { name: 'two leading BOMs: only the first is taken off', text: '\uFEFF\uFEFFdata: two\n\ndata: after\n\n' },
  { name: 'BOM after the start is a character', text: 'data: x\n\n\uFEFFdata: y\n\ndata: \uFEFFz\n\n' },
  { name: 'comments', text: ': comment\ndata: a\n:another\n:\n\n: only a comment\n\n:data: no\n\n' },
  {
    name: 'retry, valid and not',
    text: 'retry: 1500\nretry: 15x\nretry: -1\nretry:  20\nretry:\nretry\nretry: 007\nretry: 1.5\nretry: \u0663\nretry: 1e3\nretry: 0\ndata: r\n\nretry: 99\n',
  },
  { name: 'id containing NUL is ignored', text: 'id: a\0b\ndata: x\n\nid: ok\ndata: y\n\nid: c\0\ndata: z\n\nid: \0\ndata: w\n\n' },
  { name: 'id persists across events', text: 'id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\nevent: t\ndata: d\n\n' },
  { name: 'id reset by an empty id', text: 'id: 5\ndata: a\n\nid\ndata: b\n\nid: 6\ndata: c\n\nid: \ndata: d\n\nid:\ndata: e\n\n' },
  {
    name: 'id-only blocks set the last event ID without an event',
    text: 'id: 1\n\ndata: a\n\nid: 2\nevent: foo\n\ndata: b\n\nid: 3\n\n',
    expected: {
      events: [
        { type: 'message', data: 'a', lastEventId: '1' },
        { type: 'message', data: 'b', lastEventId: '2' },
      ],
      lastEventId: '3',
      retries: [],
    },
  },
  {
    name: 'an id-only block, then an id reset without data',
    text: 'id: 7\ndata: a\n\nid: 8\n\nid\n\ndata: b\n\n',
    expected: {
      events: [
        { type: 'message', data: 'a', lastEventId: '7' },
        { type: 'message', data: 'b', lastEventId: '' },
      ],
      lastEventId: '',
      retries: [],
    },
  },
  {
    name: 'an id in a block the stream never ends is not the last event ID',
    text: 'id: 1\ndata: a\n\nid: 2\n\nid: 3\ndata: never\n',
    expected: { events: [{ type: 'message', data: 'a', lastEventId: '1' }], lastEventId: '2', retries: [] },
  },
  { name: 'empty data lines', text: 'data\n\ndata:\n\ndata:\ndata:\n\ndata: \n\ndata\ndata\ndata\n\n' },
  { name: 'data without a colon', text: 'data\ndata: x\ndata\n\n' },
  { name: 'one space after the colon is taken off, once', text: 'data:  two spaces\n\ndata:\tTab\n\nevent:  spaced\ndata:x\n\ndata:   \n\n' },
  { name: 'unknown fields', text: 'foo: bar\ndata: a\nDATA: b\nData: c\ndata : d\n data: e\nevent\ndata: f\nx\n\n' },
  { name: 'multi-line data', text: 'data: l1\ndata: l2\ndata:\ndata: l4\n\n' },
  { name: 'colons in values', text: 'data: a:b:c\n\nevent:x:y\ndata: z\n\nid: i:d\ndata: :\n\n' },
  { name: 'event types, and their reset after each dispatch', text: 'event: price\ndata: 1\n\nevent: \ndata: 2\n\nevent: a\nevent: b\ndata: 3\n\ndata: 4\n\nevent: lost\n\ndata: 5\n\n' },
  { name: 'blank lines alone', text: '\n\n\r\n\r\r\n\n' },
  { name: 'the last event has no blank line', text: 'data: first\n\ndata: unfinished\n' },
  { name: 'the last line has no line end', text: 'data: first\n\ndata: unfinished' },
  { name: 'the stream ends with a CR', text: 'data: first\r\rdata: second\r' },
  { name: 'the stream ends with CR CR', text: 'data: a\r\r' },
  { name: 'UTF-8 multi-byte characters', text: 'data: héllo wörld €uro 😀 日本語\n\nevent: ünï€😀\ndata: 🎉\ndata: ß\n\nid: 🆔\ndata: x\n\n' },
  { name: 'UTF-8 next to line ends', text: 'data: é\r\n\r\ndata: 😀\r\rdata:€\n\n' },
  { name: 'a big event', text: `data: ${'x'.repeat(3000)}\ndata: ${'é'.repeat(500)}\n\n` },
];

/** What the oracle says about a whole stream. */
function oracle(bytes: Uint8Array): Outcome {
  let text = new TextDecoder().decode(bytes);
  if (text.endsWith('\r')) text += '\n';
  const outcome: Outcome = { events: [], lastEventId: '', retries: [] };
  const parser = oracleParser({
    onEvent: ({ event, data, id }) => {
      if (id !== undefined) outcome.lastEventId = id;
      outcome.events.push({ type: event ?? 'message', data, lastEventId: outcome.lastEventId });
    },
    onRetry: (ms) => outcome.retries.push(ms),
  });
  parser.feed(text);
  return outcome;
}

/** Our parser, fed as connection.ts feeds it: each chunk through one streaming TextDecoder. */
function ours(chunks: Uint8Array[]): Outcome {
  const outcome: Outcome = { events: [], lastEventId: '', retries: [] };
  const decoder = new TextDecoder();
  const feed = createParser({
    dispatch: ({ type, data, id }) => {
      outcome.lastEventId = id;
      if (data !== '') outcome.events.push({ type, data: data.slice(0, -1), lastEventId: id });
    },
    retry: (ms) => outcome.retries.push(ms),
  });
  for (const chunk of chunks) feed(decoder.decode(chunk, { stream: true }));
  return outcome;
}

/** The same chunks through the real fetch loop: a `fetch` that answers them as an event stream. */
async function throughConnection(chunks: Uint8Array[]): Promise<Outcome> {
  const outcome: Outcome = { events: [], lastEventId: '', retries: [] };
  let done!: () => void;
  const ended = new Promise<void>((resolve) => (done = resolve));
  let calls = 0;
  const sink: Sink = {
    get lastEventId() {
      return outcome.lastEventId;
    },
    opened() {},
    dispatched({ type, data, id }) {
      outcome.lastEventId = id;
      if (data !== '') outcome.events.push({ type, data: data.slice(0, -1), lastEventId: id });
    },
    retried: (ms) => outcome.retries.push(ms),
    failed() {
      // The stream ended: that is all of it.
      connection.stop();
      done();
    },
  };
  const connection = new Connection(
    {
      url: 'http://127.0.0.1:9/',
      withCredentials: false,
      headers: undefined,
      retry: 1000,
      maxRetry: 1000,
      stallTimeout: 0,
      fetch: async () => {
        calls++;
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            for (const chunk of chunks) controller.enqueue(chunk);
            controller.close();
          },
        });
        return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
      },
    },
    sink,
  );
  await Promise.race([ended, new Promise((_, reject) => AbortSignal.timeout(5000).addEventListener('abort', () => reject(new Error('the stream never ended'))))]);
  assert.equal(calls, 1);
  return outcome;
}

/** A seeded generator (mulberry32): the same pieces on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts `bytes` at the given offsets (ascending). */
function cut(bytes: Uint8Array, at: number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const end of [...at, bytes.length]) {
    pieces.push(bytes.subarray(start, end));
    start = end;
  }
  return pieces;
}

/** Random pieces of `min`–`max` bytes. */
function pieces(bytes: Uint8Array, next: () => number, min: number, max: number): Uint8Array[] {
  const at: number[] = [];
  for (let offset = 0; ; ) {
    offset += min + Math.floor(next() * (max - min + 1));
    if (offset >= bytes.length) break;
    at.push(offset);
  }
  return cut(bytes, at);
}

/** Every way of cutting the stream that this file tries, each with a label for failures. */
function* splits(bytes: Uint8Array, seed: number): Generator<[string, Uint8Array[]]> {
  yield ['whole', [bytes]];
  for (let k = 0; k <= bytes.length; k++) yield [`cut at ${k}`, cut(bytes, [k])];
  if (bytes.length <= 64) for (let i = 1; i < bytes.length; i++) for (let j = i; j < bytes.length; j++) yield [`cut at ${i} and ${j}`, cut(bytes, [i, j])];
  yield ['one byte at a time', cut(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1))];
  const next = random(seed);
  for (let run = 0; run < 30; run++) yield [`random 1-7 byte pieces, seed ${seed} run ${run}`, pieces(bytes, next, 1, 7)];
  // A read can also give an empty chunk: between a CR and its LF, say.
  for (let run = 0; run < 30; run++) yield [`random 0-7 byte pieces, seed ${seed} run ${run}`, pieces(bytes, next, 0, 7)];
}

const encoder = new TextEncoder();

describe('the stream parser agrees with eventsource-parser', () => {
  CORPUS.forEach(({ name, text, expected }, index) => {
    test(name, async () => {
      const bytes = encoder.encode(text);
      const reference = expected ?? oracle(bytes);
      let tried = 0;
      for (const [label, chunks] of splits(bytes, 1000 + index)) {
        assert.deepEqual(ours(chunks), reference, `${name}: ${label}`);
        tried++;
      }
      // The real loop: whole, byte by byte, and random pieces with empty ones.
      const next = random(2000 + index);
      const loopSplits: Array<[string, Uint8Array[]]> = [
        ['whole', [bytes]],
        ['one byte at a time', cut(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1))],
        ...Array.from({ length: 5 }, (_, run): [string, Uint8Array[]] => [`random 0-7 byte pieces, run ${run}`, pieces(bytes, next, 0, 7)]),
      ];
      for (const [label, chunks] of loopSplits) assert.deepEqual(await throughConnection(chunks), reference, `${name}, through Connection: ${label}`);
      assert.ok(tried > bytes.length);
    });
  });
});

describe('spot checks written out from the spec', () => {
  // So that the comparison above cannot pass with both parsers wrong in the same way.
  const run = (text: string): Outcome => ours([encoder.encode(text)]);

  test('CR, LF and CRLF end lines; a blank line dispatches; data lines join with LF', () => {
    assert.deepEqual(run('data: a\r\ndata: b\rdata: c\n\r\n').events, [{ type: 'message', data: 'a\nb\nc', lastEventId: '' }]);
  });

  test('only the first BOM is taken off', () => {
    assert.deepEqual(run('\uFEFFdata: 1\n\n').events, [{ type: 'message', data: '1', lastEventId: '' }]);
    assert.deepEqual(run('\uFEFF\uFEFFdata: 1\n\n').events, []);
  });

  test('retry takes ASCII digits only', () => {
    assert.deepEqual(run('retry: 10\nretry: 1x\nretry: \u0661\nretry: -5\nretry:  7\nretry: 0030\n').retries, [10, 30]);
  });

  test('an id with NUL is ignored; an empty id resets', () => {
    assert.deepEqual(run('id: 1\ndata: a\n\nid: 2\0\ndata: b\n\nid:\ndata: c\n\n').events.map((e) => e.lastEventId), ['1', '1', '']);
  });

  test('a block without data dispatches nothing but sets the last event ID', () => {
    assert.deepEqual(run('id: 9\nevent: x\n\n'), { events: [], lastEventId: '9', retries: [] });
  });

  test('the oracle (eventsource-parser) does ignore an id with NUL and split CRLFs', () => {
    // The comparison is only as good as the oracle: check it does what the spec says where ours is tested.
    assert.deepEqual(oracle(encoder.encode('id: a\0\ndata: x\n\nid: b\r\ndata: y\r\n\r\n')).events, [
      { type: 'message', data: 'x', lastEventId: '' },
      { type: 'message', data: 'y', lastEventId: 'b' },
    ]);
  });
});

describe('random streams agree with eventsource-parser', () => {
  // Blocks of random fields (every block with an id has data, so the oracle's lastEventId holds),
  // random line ends, comments, retry fields and multi-byte text.
  const next = random(42);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const values = ['', ' ', 'x', ' lead', 'a:b', 'é€😀', '\0', '  two', 'end '];
  const ends = ['\n', '\r', '\r\n'];
  function block(): string {
    const lines: string[] = [];
    const hasData = next() < 0.85;
    for (let n = Math.floor(next() * 4); n >= 0; n--) {
      const kind = pick(['data', 'data', 'event', 'comment', 'retry', 'unknown', 'id']);
      if (kind === 'id' && !hasData) continue;
      if (kind === 'data') lines.push(pick(['data', 'data:', 'data: ']) + pick(values));
      else if (kind === 'event') lines.push(`event:${pick([' ', ''])}${pick(['', 'a', 'ü'])}`);
      else if (kind === 'comment') lines.push(`:${pick(values)}`);
      else if (kind === 'retry') lines.push(`retry:${pick([' 5', ' 12', '5x', ' ', '  3'])}`);
      else if (kind === 'unknown') lines.push(`${pick(['foo', 'Data', 'ID', 'data '])}:${pick(values)}`);
      else lines.push(`id:${pick([' 1', ' 2', '', ' é', ' n\0'])}`);
    }
    if (hasData) lines.push(`data: ${pick(values)}`);
    return lines.map((line) => line + pick(ends)).join('') + pick(ends);
  }
  for (let n = 0; n < 40; n++) {
    const text = (next() < 0.2 ? '\uFEFF' : '') + Array.from({ length: 1 + Math.floor(next() * 5) }, block).join('');
    test(`random stream ${n}`, () => {
      const bytes = encoder.encode(text);
      const reference = oracle(bytes);
      for (const [label, chunks] of splits(bytes, 3000 + n)) assert.deepEqual(ours(chunks), reference, `${JSON.stringify(text)}: ${label}`);
    });
  }
});
