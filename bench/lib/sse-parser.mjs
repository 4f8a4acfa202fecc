// The load client's parser for one SSE response: the HTTP head, then the body, chunked or
// close-delimited (whichever the head announces), and events counted the way `EventSource`
// counts them: a blank line dispatches an event, and only if the event had a `data` field
// (comments and keep-alives are not events).
//
// It works on bytes, not strings (decoding every read to a string would cost more than the
// server work we are measuring), and it is written to cost little per event, because at a
// million events a second the client, not the server, would otherwise be the bottleneck:
// lines are found with `Buffer.indexOf` (native memchr), only the first five bytes of a line
// are looked at ("data:" or "data" alone), and the publish timestamp is read only on sampled
// connections. A line, a chunk-size line or the BOM can be split anywhere between reads:
// everything needed to resume lives in the instance.
//
// With `onEvent`, it also reads each event's id (the replay storm checks that every client
// gets exactly the events it is owed, in order): only the number after the id's last `-` is
// kept (`<epoch>-<seq>` from the hub, `<seq>` from the raw server), as eventsource-parser gives
// ids, per event (an event without an id line has none). Without `onEvent`, id lines cost nothing
// beyond a failed first-byte test, so the fan-out figures are unchanged. With `idText` as well, the
// id's text is kept too (latin1, one string per id line), for a client that sends it back as its
// `Last-Event-ID` (the reconnect storm); it can be turned off on the fly (`parser.idText = false`).
//
// Kept free of sockets and process messaging, so that bench/client-selftest.mjs can check it
// against eventsource-parser.

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const DATA = [0x64, 0x61, 0x74, 0x61]; // "data"
const ID = [0x69, 0x64]; // "id"
const DASH = 0x2d;
const SPACE = 0x20;
/** An id's number past this many digits would lose precision as a double: it counts as no number. */
const MAX_ID_DIGITS = 15;
const BOM = [0xef, 0xbb, 0xbf]; // a UTF-8 BOM at the start of the stream is not part of the first line

// Where the parser is in the response.
const HEAD = 0;
const CHUNK_SIZE = 1; // hex digits, maybe ";extensions", then CRLF
const CHUNK_DATA = 2;
const CHUNK_CRLF = 3; // the CRLF after a chunk's data
const IDENTITY = 4; // close-delimited body
const DONE = 5;

const MAX_HEAD = 16_384;

export class SseResponseParser {
  /**
   * @param {object} options
   * @param {boolean} [options.sampled]  read each event's publish timestamp (µs), for latency
   * @param {(ok: boolean) => void} [options.onHead]  once: true for a 200 head, false otherwise
   * @param {(timestampUs: number) => void} [options.onSample]  per dispatched event with a timestamp
   * @param {(id: number) => void} [options.onEvent]  per dispatched event: the number its id ends
   *   with (after the last `-`), or -1 if it has no id line or the id is not digits and dashes;
   *   with `idText`, also the id's text (undefined without an id line)
   * @param {boolean} [options.idText]  keep each id's text for `onEvent` (only with `onEvent`)
   */
  constructor({ sampled = false, onHead = () => {}, onSample = () => {}, onEvent, idText = false } = {}) {
    this.sampled = sampled;
    this.onHead = onHead;
    this.onSample = onSample;
    this.onEvent = onEvent;
    this.ids = onEvent !== undefined;
    this.state = HEAD;
    this.head = '';
    this.chunkSize = 0;
    this.inChunkExt = false;
    this.chunkLeft = 0;
    // Event parser.
    this.bom = 0; // BOM bytes matched at the start of the body; -1 once past it
    this.afterCR = false; // a CR ended the last line; an LF right after it is part of that end
    this.lineLen = 0; // bytes of the current line so far
    this.dataMatch = 0; // how much of "data:" the current line starts with; -1: not a data line
    this.eventHasData = false;
    this.timestamp = -1; // -1: not reading digits yet; -2: done with this event's digits
    this.eventTimestamp = 0;
    this.events = 0; // events dispatched during the current `onData`
    // Ids (only with `onEvent`).
    this.idMatch = 0; // how much of "id:" the current line starts with; -1: not an id line
    this.eventId = -1; // the current event's id number, -1: none
    this.idValue = 0; // the id line being read: digits since its last dash
    this.idDigits = 0; // how many; -1: not a number (a byte other than a digit or a dash)
    this.idStarted = false; // past the one space a field value may start with
    this.idNul = false; // a NUL in the value: the line is ignored (as EventSource does)
    this.idText = idText;
    this.idString = ''; // with idText: the id line being read, as text
    this.eventIdText = undefined; // with idText: the current event's id, as text
  }

  get done() {
    return this.state === DONE;
  }

  /** Feeds one read; returns the number of events it completed. */
  onData(buf) {
    let i = 0;
    if (this.state === HEAD) {
      i = this.readHead(buf);
      if (i < 0) return 0;
    }
    this.events = 0;
    if (this.state === IDENTITY) this.parseEvents(buf, i, buf.length);
    else this.readChunked(buf, i);
    return this.events;
  }

  /** Stops parsing: a failed or abandoned connection. */
  fail() {
    if (this.state === HEAD) this.onHead(false);
    this.state = DONE;
  }

  /** Returns where the body starts in `buf`, or -1 if the head is not complete (or not a 200). */
  readHead(buf) {
    const previous = this.head.length;
    // Only as much as a head can take: the first read may carry a large body too.
    this.head += buf.toString('latin1', 0, Math.min(buf.length, MAX_HEAD + 4));
    const end = this.head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.head.length > MAX_HEAD) this.fail(); // not an HTTP response we understand
      return -1;
    }
    const ok = /^HTTP\/1\.[01] 200 /.test(this.head);
    const chunked = /\r\ntransfer-encoding:[ \t]*chunked/i.test(this.head.slice(0, end + 2));
    this.head = '';
    this.state = ok ? (chunked ? CHUNK_SIZE : IDENTITY) : DONE;
    this.onHead(ok);
    return ok ? end + 4 - previous : -1;
  }

  readChunked(buf, i) {
    const end = buf.length;
    while (i < end) {
      switch (this.state) {
        case CHUNK_SIZE: {
          const c = buf[i++];
          if (c === LF) {
            const size = this.chunkSize;
            this.chunkSize = 0;
            this.inChunkExt = false;
            if (size === 0) {
              this.state = DONE; // the last chunk: the server ended the stream
              return;
            }
            this.chunkLeft = size;
            this.state = CHUNK_DATA;
          } else if (!this.inChunkExt) {
            const digit = hexValue(c);
            if (digit >= 0) this.chunkSize = this.chunkSize * 16 + digit;
            else this.inChunkExt = true; // ';' or CR: the size is complete
          }
          break;
        }
        case CHUNK_DATA: {
          const stop = Math.min(end, i + this.chunkLeft);
          this.parseEvents(buf, i, stop);
          this.chunkLeft -= stop - i;
          i = stop;
          if (this.chunkLeft === 0) this.state = CHUNK_CRLF;
          break;
        }
        case CHUNK_CRLF: {
          if (buf[i++] === LF) this.state = CHUNK_SIZE;
          break;
        }
        default:
          return;
      }
    }
  }

  /**
   * Body bytes [start, end). The text/event-stream line rules: lines end in CRLF, LF or CR; a
   * blank line dispatches.
   */
  parseEvents(buf, start, end) {
    if (this.bom >= 0) start = this.skipBom(buf, start, end);
    if (start >= end) return;
    // Servers end lines with LF; CR (alone or in CRLF) is rare enough that a range holding one
    // goes through the byte loop, which handles every ending and a CRLF split between reads.
    const cr = buf.indexOf(CR, start);
    if (cr !== -1 && cr < end) {
      this.parseBytes(buf, start, end);
      return;
    }
    let i = start;
    if (this.afterCR) {
      this.afterCR = false;
      if (buf[i] === LF) i++; // the LF of a CRLF whose CR ended the previous range
    }
    while (i < end) {
      // indexOf searches to the end of `buf`, not of the range: an LF beyond `end` belongs to
      // the next range (chunk framing), so the line is still open here.
      const lf = buf.indexOf(LF, i);
      if (lf === -1 || lf >= end) {
        this.lineBytes(buf, i, end);
        return;
      }
      if (this.lineLen === 0) this.wholeLine(buf, i, lf);
      else {
        this.lineBytes(buf, i, lf); // the rest of a line that began in an earlier range
        this.endLine();
      }
      i = lf + 1;
      // The blank line that ends an event, checked here: saves a search per event.
      if (i < end && buf[i] === LF) {
        this.dispatch();
        i++;
      }
    }
  }

  /** A complete line [s, e) that starts in this range: the common case, decided inline. */
  wholeLine(buf, s, e) {
    const len = e - s;
    if (len === 0) this.dispatch();
    else if (
      len >= 4 &&
      buf[s] === 0x64 &&
      buf[s + 1] === 0x61 &&
      buf[s + 2] === 0x74 &&
      buf[s + 3] === 0x61 &&
      (len === 4 || buf[s + 4] === COLON) // "data" alone is a data field too (empty value)
    ) {
      if (this.sampled && len > 5) this.readTimestamp(buf, s + 5, e);
      this.dataLine();
    } else if (this.ids && len >= 2 && buf[s] === 0x69 && buf[s + 1] === 0x64 && (len === 2 || buf[s + 2] === COLON)) {
      this.idStart();
      if (len > 3) this.idBytes(buf, s + 3, e);
      this.idLine();
    }
  }

  /** The fallback for ranges holding a CR: one byte at a time between line breaks. */
  parseBytes(buf, start, end) {
    let i = start;
    while (i < end) {
      const c = buf[i];
      if (c === LF || c === CR) {
        if (c === LF && this.afterCR) this.afterCR = false;
        else {
          this.endLine();
          this.afterCR = c === CR;
        }
        i++;
        continue;
      }
      this.afterCR = false;
      let j = i + 1;
      while (j < end && buf[j] !== LF && buf[j] !== CR) j++;
      this.lineBytes(buf, i, j);
      i = j;
    }
  }

  /** Bytes [s, e) of the current line, with no line break among them; the line may go on. */
  lineBytes(buf, s, e) {
    if (this.ids) this.idLineBytes(buf, s, e);
    let i = s;
    // Only the first five bytes say whether this is a data line.
    for (; i < e && this.lineLen < 5; i++) {
      const c = buf[i];
      const n = this.lineLen++;
      if (n < 4) this.dataMatch = this.dataMatch === n && c === DATA[n] ? n + 1 : -1;
      else if (this.dataMatch === 4) this.dataMatch = c === COLON ? 5 : -1;
    }
    if (i < e) {
      if (this.sampled && this.dataMatch === 5) this.readTimestamp(buf, i, e);
      this.lineLen += e - i;
    }
  }

  /** `lineBytes` for ids, before `lineLen` moves on: whether the line is "id:…", and its value. */
  idLineBytes(buf, s, e) {
    let i = s;
    for (let n = this.lineLen; i < e && n < 3; i++, n++) {
      const c = buf[i];
      if (n < 2) this.idMatch = this.idMatch === n && c === ID[n] ? n + 1 : -1;
      else if (this.idMatch === 2) {
        this.idMatch = c === COLON ? 3 : -1;
        if (this.idMatch === 3) this.idStart();
      }
    }
    if (i < e && this.idMatch === 3) this.idBytes(buf, i, e);
  }

  idStart() {
    this.idValue = 0;
    this.idDigits = 0;
    this.idStarted = false;
    this.idNul = false;
    this.idString = '';
  }

  /** Value bytes [s, e) of an id line. */
  idBytes(buf, s, e) {
    let i = s;
    if (!this.idStarted && i < e) {
      this.idStarted = true;
      if (buf[i] === SPACE) i++;
    }
    if (this.idText && i < e) this.idString += buf.toString('latin1', i, e);
    for (; i < e; i++) {
      const c = buf[i];
      if (c >= 0x30 && c <= 0x39) {
        if (this.idDigits >= 0) {
          this.idValue = this.idValue * 10 + (c - 0x30);
          this.idDigits++;
        }
      } else if (c === DASH) {
        if (this.idDigits >= 0) {
          this.idValue = 0;
          this.idDigits = 0;
        }
      } else {
        if (c === 0) this.idNul = true;
        this.idDigits = -1;
      }
    }
  }

  /** The end of an id line (`id:` at least, or `id` alone): it sets the event's id. */
  idLine() {
    if (this.idNul) return;
    this.eventId = this.idDigits > 0 && this.idDigits <= MAX_ID_DIGITS ? this.idValue : -1;
    if (this.idText) this.eventIdText = this.idString;
  }

  /**
   * The first digits of the event's first data line that has any are its publish time (µs);
   * better-sse wraps the string in JSON quotes, so anything before the digits is skipped.
   */
  readTimestamp(buf, s, e) {
    if (this.timestamp === -2) return;
    for (let i = s; i < e; i++) {
      const c = buf[i];
      if (c >= 0x30 && c <= 0x39) this.timestamp = (this.timestamp < 0 ? 0 : this.timestamp) * 10 + (c - 0x30);
      else if (this.timestamp >= 0) {
        this.eventTimestamp = this.timestamp;
        this.timestamp = -2;
        return;
      }
    }
  }

  endLine() {
    if (this.lineLen === 0) this.dispatch();
    else if (this.dataMatch === 5 || (this.dataMatch === 4 && this.lineLen === 4)) this.dataLine();
    else if (this.ids && (this.idMatch === 3 || (this.idMatch === 2 && this.lineLen === 2))) {
      if (this.idMatch === 2) this.idStart(); // "id" alone: an empty value
      this.idLine();
    }
    this.lineLen = 0;
    this.dataMatch = 0;
    this.idMatch = 0;
  }

  dataLine() {
    this.eventHasData = true;
    if (this.timestamp >= 0) {
      this.eventTimestamp = this.timestamp; // the digits ran to the end of the line
      this.timestamp = -2;
    }
  }

  /** A blank line: the event counts if it had data. */
  dispatch() {
    if (this.eventHasData) {
      this.events++;
      if (this.sampled && this.eventTimestamp > 0) this.onSample(this.eventTimestamp);
      if (this.ids) this.onEvent(this.eventId, this.eventIdText);
    }
    this.eventId = -1;
    this.eventIdText = undefined;
    this.eventHasData = false;
    this.timestamp = -1;
    this.eventTimestamp = 0;
  }

  /** Skips a UTF-8 BOM at the start of the body, however it is split; returns where to go on. */
  skipBom(buf, i, end) {
    while (i < end && this.bom >= 0) {
      if (buf[i] === BOM[this.bom]) {
        i++;
        if (++this.bom === 3) this.bom = -1;
      } else {
        // Not a BOM after all: the bytes matched so far start the first line (not a data line).
        if (this.bom > 0) {
          this.lineLen = this.bom;
          this.dataMatch = -1;
          this.idMatch = -1;
        }
        this.bom = -1;
      }
    }
    return i;
  }
}

function hexValue(c) {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}
