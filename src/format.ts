/**
 * The `text/event-stream` wire format: one function that turns an event into the exact text the
 * WHATWG parser reads back, and nothing else. No I/O here, so it is easy to test exhaustively.
 */

/** One Server-Sent Event. Every field is optional; `{}` formats as a lone blank line. */
export interface SseEvent {
  /** A string is sent as is, one `data:` line per line of it; anything else is JSON.stringify'd. */
  data?: unknown;
  /** Event type (`addEventListener(type)` on the client). Must not contain CR or LF. */
  event?: string;
  /** Sets the client's last event id (sent back as `Last-Event-ID`). No CR, LF or NUL. `""` resets it. */
  id?: string | number;
  /** Reconnection time in milliseconds: a non-negative integer. */
  retry?: number;
  /** Sent as `:` comment lines, which clients ignore. */
  comment?: string;
}

// The spec's three line terminators. A lone CR is a line break too: missing it is the classic
// SSE injection (a CR in user data would start a forged field on the client).
const LINE_BREAK = /\r\n|\r|\n/g;
const HAS_LINE_BREAK = /[\r\n]/;
const HAS_LINE_BREAK_OR_NUL = /[\r\n\0]/;

/**
 * Formats one event as the exact text to write, ending in a blank line.
 * @throws TypeError naming the field when `event`, `id`, `retry`, `comment` or `data` cannot be
 *   sent faithfully. Nothing is half-built: the caller writes all of the event or none of it.
 */
export function formatEvent(event: SseEvent): string {
  if (event === null || typeof event !== 'object') {
    throw new TypeError(`serve-sse: an event must be an object, got ${describe(event)}`);
  }
  let text = '';
  const { comment, event: type, id, retry, data } = event;
  if (comment !== undefined) {
    if (typeof comment !== 'string') throw fieldError('comment', 'must be a string', comment);
    text += formatComment(comment);
  }
  if (type !== undefined) {
    if (typeof type !== 'string') throw fieldError('event', 'must be a string', type);
    if (HAS_LINE_BREAK.test(type)) throw fieldError('event', 'must not contain CR or LF', type);
    text += `event: ${type}\n`;
  }
  if (id !== undefined) {
    text += `id: ${formatId(id)}\n`;
  }
  if (retry !== undefined) {
    text += `retry: ${formatRetry(retry)}\n`;
  }
  if (data !== undefined) {
    text += formatData(data);
  }
  return text + '\n';
}

/** `: text` lines (no blank line after them); every line break in `text` starts a new comment line. */
export function formatComment(text: string): string {
  return `:${text === '' ? '' : ' '}${text.replace(LINE_BREAK, '\n: ')}\n`;
}

/** The `retry:` field value, validated. */
export function formatRetry(retry: unknown): string {
  if (typeof retry !== 'number' || !Number.isSafeInteger(retry) || retry < 0) {
    throw fieldError('retry', 'must be a non-negative integer (milliseconds)', retry);
  }
  return String(retry);
}

function formatId(id: unknown): string {
  if (typeof id === 'number') {
    if (!Number.isFinite(id)) throw fieldError('id', 'must be a finite number or a string', id);
    return String(id);
  }
  if (typeof id !== 'string') throw fieldError('id', 'must be a string or a number', id);
  // A NUL makes clients ignore the whole `id:` field; CR/LF would inject fields.
  if (HAS_LINE_BREAK_OR_NUL.test(id)) throw fieldError('id', 'must not contain CR, LF or NUL', id);
  return id;
}

function formatData(data: unknown): string {
  if (typeof data === 'string') {
    // One space after the colon, always: the parser strips exactly one, so data that starts
    // with a space survives. `data: ` with nothing after it still yields an empty line.
    return `data: ${data.replace(LINE_BREAK, '\ndata: ')}\n`;
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (error) {
    throw fieldError('data', `could not be serialised as JSON (${(error as Error).message})`, data);
  }
  if (json === undefined) throw fieldError('data', 'has no JSON representation', data);
  // JSON.stringify escapes every control character, so its output is a single line.
  return `data: ${json}\n`;
}

function fieldError(field: string, rule: string, value: unknown): TypeError {
  return new TypeError(`serve-sse: event.${field} ${rule}; got ${describe(value)}`);
}

function describe(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return JSON.stringify(shown);
  }
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return value.toString();
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
