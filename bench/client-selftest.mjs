// Self-check for the load client's parser (lib/sse-parser.mjs): `node bench/client-selftest.mjs`.
//
// The benchmark's figures are only as good as its event count, and the parser takes shortcuts
// for speed (native line search, a separate path for ranges holding a CR, state carried across
// reads and HTTP chunks). So it is compared with eventsource-parser, used as the oracle, on
// synthetic streams: LF, CRLF and CR line endings, comment-only blocks, `data` without a colon,
// a BOM, and random streams; each fed whole, split at every byte offset, byte by byte, and in
// random pieces; both close-delimited and in chunked framing with awkward chunk sizes. On
// sampled connections the publish timestamps the parser reads must match the oracle's data too,
// and with `onEvent` (the replay storm's id check) so must each event's id, as the number the
// storm checks and, with `idText` (the reconnect storm's `Last-Event-ID`), as text.
// Exits 1 on any mismatch.
import { createParser } from 'eventsource-parser';
import { SseResponseParser } from './lib/sse-parser.mjs';

let checks = 0;
let failures = 0;
const MAX_REPORTED = 20;

function check(name, actual, expected) {
  checks++;
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a === e) return true;
  failures++;
  if (failures <= MAX_REPORTED) console.error(`FAIL ${name}\n  got      ${a}\n  expected ${e}`);
  return false;
}

// ---------------------------------------------------------------------------------------------
// The oracle and the parser under test.

/** Events in `body` (bytes) by eventsource-parser, and the timestamps the client should read. */
function oracle(body) {
  const events = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  let text = new TextDecoder().decode(body); // UTF-8, strips a leading BOM as EventSource does
  // eventsource-parser holds a CR at the very end of its input back, in case an LF follows; at
  // the end of the stream the CR is a line end (spec), and an LF after it makes that so.
  if (text.endsWith('\r')) text += '\n';
  parser.feed(text);
  const timestamps = [];
  const ids = events.map(({ id }) => idNumber(id));
  const idTexts = events.map(({ id }) => id ?? null);
  for (const { data } of events) {
    // The client's rule: the first digits of the first data line that has any.
    const digits = data
      .split('\n')
      .map((line) => line.match(/\d+/))
      .find(Boolean);
    if (digits && Number(digits[0]) > 0) timestamps.push(Number(digits[0]));
  }
  return { count: events.length, timestamps, ids, idTexts };
}

/** The client's rule for ids: digits and dashes only, the number after the last dash (up to 15 digits); else -1. */
function idNumber(id) {
  if (id === undefined || !/^[\d-]*\d$/.test(id)) return -1;
  const tail = id.slice(id.lastIndexOf('-') + 1);
  return tail.length <= 15 ? Number(tail) : -1;
}

/** Feeds `pieces` (the whole response, head included) to the client's parser. */
function parse(pieces, sampled, withIds = false) {
  let head = null;
  let count = 0;
  const timestamps = [];
  const ids = [];
  const idTexts = [];
  const parser = new SseResponseParser({
    // The text as UTF-8, as the oracle decodes it (the parser keeps the bytes as latin1).
    onEvent: withIds ? (id, text) => (ids.push(id), idTexts.push(text === undefined ? null : Buffer.from(text, 'latin1').toString())) : undefined,
    idText: withIds,
    sampled,
    onHead: (ok) => {
      if (head !== null) throw new Error('onHead called twice');
      head = ok;
    },
    onSample: (timestampUs) => timestamps.push(timestampUs),
  });
  for (const piece of pieces) count += parser.onData(piece);
  return { head, count, timestamps: sampled ? timestamps : [], ...(withIds ? { ids, idTexts } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Framing and splitting.

const HEAD_IDENTITY = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n';
const HEAD_CHUNKED =
  'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\ntransfer-encoding: chunked\r\nConnection: keep-alive\r\n\r\n';

function identity(body) {
  return Buffer.concat([Buffer.from(HEAD_IDENTITY, 'latin1'), body]);
}

/**
 * Chunked transfer-coding of `body`, chunk sizes taken in turn from `sizes`; hex in either
 * case, some chunks with extensions, then the last chunk and an empty trailer.
 */
function chunked(body, sizes) {
  const parts = [Buffer.from(HEAD_CHUNKED, 'latin1')];
  let at = 0;
  for (let k = 0; at < body.length; k++) {
    const size = Math.min(sizes[k % sizes.length], body.length - at);
    const hex = k % 2 ? size.toString(16).toUpperCase() : size.toString(16);
    const ext = k % 3 === 2 ? ';name=value' : '';
    parts.push(Buffer.from(`${hex}${ext}\r\n`, 'latin1'), body.subarray(at, at + size), Buffer.from('\r\n'));
    at += size;
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

/** Every way the tests cut a response into reads. */
function* splittings(response, random) {
  yield ['whole', [response]];
  for (let k = 1; k < response.length; k++) yield [`split at ${k}`, [response.subarray(0, k), response.subarray(k)]];
  yield ['byte by byte', Array.from(response, (b) => Buffer.from([b]))];
  for (let n = 0; n < 5; n++) {
    const pieces = [];
    for (let at = 0; at < response.length; ) {
      const size = 1 + Math.floor(random() * 40);
      pieces.push(response.subarray(at, at + size));
      at += size;
    }
    yield [`random pieces #${n}`, pieces];
  }
}

/** Checks one body in both framings, in every splitting, sampled and not. */
function checkBody(name, body, { expectCount, everyOffset = true, random }) {
  const want = oracle(body);
  if (expectCount !== undefined) check(`${name}: oracle count`, want.count, expectCount);
  const framings = [
    ['identity', identity(body)],
    ['chunked 1,2,3,5,8,13', chunked(body, [1, 2, 3, 5, 8, 13])],
    ['chunked 7,64', chunked(body, [7, 64])],
    ['chunked whole', chunked(body, [Math.max(1, body.length)])],
  ];
  for (const [framing, response] of framings) {
    for (const [how, pieces] of splittings(response, random)) {
      if (!everyOffset && how.startsWith('split at')) continue;
      for (const [sampled, withIds] of [[false, false], [true, false], [false, true]]) {
        const got = parse(pieces, sampled, withIds);
        const label = `${name} / ${framing} / ${how}${sampled ? ' / sampled' : ''}${withIds ? ' / ids' : ''}`;
        const expected = { head: true, count: want.count, timestamps: sampled ? want.timestamps : [], ...(withIds ? { ids: want.ids, idTexts: want.idTexts } : {}) };
        if (!check(label, got, expected)) return;
      }
    }
  }
}

/** A small deterministic PRNG (mulberry32): failures reproduce. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Fixed cases.

const withEndings = (text, ending) => text.replaceAll('\n', ending);
const BENCH_LIKE =
  'id: 1\nevent: bench\ndata: 1700000000001.........\n\n' +
  'data: 1700000000002\ndata: a second line 99\n\n' +
  ': a comment\n\n' +
  'data:"1700000000003"\n\n' +
  'event: nothing\nid: 3\n\n';

const CASES = [
  { name: 'LF', text: BENCH_LIKE, expectCount: 3 },
  { name: 'CRLF', text: withEndings(BENCH_LIKE, '\r\n'), expectCount: 3 },
  { name: 'CR', text: withEndings(BENCH_LIKE, '\r'), expectCount: 3 },
  { name: 'mixed endings', text: 'data: 11\r\n\ndata: 12\r\r\ndata: 13\n\r\n: c\r\n\r\ndata: 14\r\n\r', expectCount: 4 },
  { name: 'comments only', text: ': keep-alive\n\n:\n\n: a\n: b\n\n:\r\n\r\n:\r\r', expectCount: 0 },
  { name: 'data without colon', text: 'data\n\ndata\r\n\r\ndata\rdata\r\r', expectCount: 3 },
  { name: 'empty data values', text: 'data:\n\ndata: \n\ndata:\ndata:\n\n', expectCount: 3 },
  {
    name: 'fields that are not data',
    text: 'data \n\ndat\n\ndatax:1\n\nData:1\n\n data:1\n\nevent: data\n\nid: 5\n\nretry: 10\n\n:data: 1\n\n',
    expectCount: 0,
  },
  { name: 'blank lines only', text: '\n\n\r\n\r\r\n', expectCount: 0 },
  { name: 'no blank line at the end', text: 'data: 1\n\ndata: 2\n', expectCount: 1 },
  { name: 'ends with CR', text: 'data: 5\r\r', expectCount: 1 },
  { name: 'BOM', text: '\uFEFFdata: 7\n\n', expectCount: 1 },
  { name: 'two BOMs', text: '\uFEFF\uFEFFdata: 7\n\ndata: 8\n\n', expectCount: 1 },
  { name: 'not quite a BOM', bytes: Buffer.from([0xef, 0xbb, ...Buffer.from('data: 7\n\ndata: 8\n\n')]), expectCount: 1 },
  { name: 'UTF-8 data', text: 'data: é€😀 42\n\nevent: ü\ndata\n\n', expectCount: 2 },
  {
    name: 'ids',
    text:
      'id: 1700000000000-901\nevent: bench\ndata: x\n\nid:902\ndata: y\n\ndata: no id\n\nid: 7\n\ndata: id lost with its block\n\n' +
      'id\ndata: empty\n\nid:\ndata: empty\n\nid:  3\ndata: two spaces\n\nid: a-1\ndata: x\n\nid: 5-\ndata: x\n\n' +
      'id: 1-2-3\nid: 44\ndata: last wins\n\nid: 6\nid: 9\u0000\ndata: NUL ignored\n\nidx: 1\ndata: x\n\nId: 1\ndata: x\n\n' +
      `id: ${'1'.repeat(16)}\ndata: too long\n\nid: ${'1'.repeat(15)}\ndata: fifteen\n\n`,
    expectCount: 15,
  },
  { name: 'ids, CRLF', text: withEndings('id: 1-2\ndata: x\n\nid: 3\ndata: y\n\nid\ndata: z\n\n', '\r\n'), expectCount: 3 },
  { name: 'long line', text: `data: 123${'x'.repeat(3000)}\n\n: ${'y'.repeat(3000)}\n\n`, expectCount: 1, everyOffset: false },
  { name: 'empty body', text: '', expectCount: 0 },
];

// ---------------------------------------------------------------------------------------------
// Random streams: lines from a vocabulary that leans on the awkward cases, random endings.

const LINES = [
  '', '', '', 'data: 123', 'data:456 x', 'data: "789"', 'data', 'data:', 'data: ', 'data:0', 'dat', 'datum: 1',
  'Data: 1', ' data: 1', ': comment', ':', 'event: bench', 'id: 42', 'retry: 10', 'x', 'data: é€ 77', 'data:\u0000',
  `data: ${'9'.repeat(15)}`, 'id: 1700000000000-901', 'id:7', 'id', 'id:', 'id: x-1', 'id: 8-', 'id:  3', 'id:4\u0000',
  'idx: 1', 'i', 'Id: 2', 'id: 1-2-3',
];
const ENDINGS = ['\n', '\n', '\n', '\r\n', '\r'];

function randomBody(random) {
  const lines = 1 + Math.floor(random() * 40);
  let text = '';
  for (let n = 0; n < lines; n++) {
    text += LINES[Math.floor(random() * LINES.length)] + ENDINGS[Math.floor(random() * ENDINGS.length)];
  }
  return Buffer.from(text);
}

// ---------------------------------------------------------------------------------------------

const started = performance.now();
const random = prng(1);

for (const { name, text, bytes, expectCount, everyOffset } of CASES) {
  checkBody(name, bytes ?? Buffer.from(text), { expectCount, everyOffset, random });
}

const SEEDS = 300;
for (let seed = 1; seed <= SEEDS; seed++) {
  const r = prng(seed);
  checkBody(`random stream (seed ${seed})`, randomBody(r), { everyOffset: seed <= 60, random: r });
}

// Heads: only a 200 counts; a head split anywhere is still found.
check('204 head', parse([Buffer.from('HTTP/1.1 204 No Content\r\n\r\ndata: 1\n\n')], false), { head: false, count: 0, timestamps: [] });
check('500 head', parse([Buffer.from('HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n')], false), { head: false, count: 0, timestamps: [] });
check('no head yet', parse([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n')], false), { head: null, count: 0, timestamps: [] });

const seconds = ((performance.now() - started) / 1000).toFixed(1);
if (failures > 0) {
  console.error(`client-selftest: ${failures} of ${checks} checks FAILED (${seconds} s)`);
  process.exitCode = 1;
} else {
  console.log(`client-selftest: all ${checks} checks passed (${CASES.length} fixed cases, ${SEEDS} random streams; ${seconds} s)`);
}
