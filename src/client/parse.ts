/**
 * The WHATWG `text/event-stream` interpretation, incrementally: decoded text in, dispatches out.
 * No I/O and no DOM here, so it runs anywhere and is tested against independent parsers.
 */

/** What a blank line dispatches. `data` is the raw data buffer: `''` means nothing to dispatch. */
export interface Dispatch {
  type: string;
  data: string;
  /** The last event ID buffer: it persists across events, and an event without data still sets it. */
  id: string;
}

export interface ParserHandlers {
  dispatch(event: Dispatch): void;
  /** A `retry` field of ASCII digits: the new reconnection time. */
  retry(ms: number): void;
}

/**
 * A parser for one connection. `id` is the last event ID buffer it starts with (the source's last
 * event ID string, so that a reconnection keeps it). Feed it decoded text (the BOM already taken
 * off, as `TextDecoder` does); the lines a chunk leaves unfinished wait for the next.
 */
export function createParser(handlers: ParserHandlers, id = ''): (text: string) => void {
  let pending = '';
  let data = '';
  let type = '';
  // A CR that ended the last chunk: an LF that starts the next one belongs to it.
  let afterCr = false;

  function line(text: string): void {
    if (text === '') {
      handlers.dispatch({ type: type || 'message', data, id });
      data = type = '';
      return;
    }
    const colon = text.indexOf(':');
    if (colon === 0) return;
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') data += `${value}\n`;
    else if (field === 'event') type = value;
    else if (field === 'id') {
      if (!value.includes('\0')) id = value;
    } else if (field === 'retry' && /^\d+$/.test(value)) handlers.retry(Number(value));
  }

  return (text) => {
    // An empty chunk (a zero-length read) must not forget a CR that ended the one before: its LF
    // would then count as a blank line of its own, and dispatch an event cut in two.
    if (text === '') return;
    if (afterCr && text[0] === '\n') text = text.slice(1);
    afterCr = false;
    pending += text;
    let start = 0;
    const breaks = /\r\n|\r|\n/g;
    for (let found = breaks.exec(pending); found !== null; found = breaks.exec(pending)) {
      // A lone CR at the very end may be the first half of a CRLF split across chunks.
      if (found[0] === '\r' && found.index === pending.length - 1) afterCr = true;
      line(pending.slice(start, found.index));
      start = breaks.lastIndex;
    }
    pending = pending.slice(start);
  };
}
