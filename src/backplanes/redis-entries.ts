/**
 * Reading what Redis answers about the stream. Replies come untyped (and their shapes have moved
 * between client versions and protocols), and the stream's key may hold entries that some other
 * program wrote: nothing here trusts either.
 */

import type { LogEntry } from './backplane.js';
import { isLogId } from './log-id.js';

/** A stream entry as Redis returns it. */
export interface StreamEntry {
  readonly id: string;
  readonly fields: unknown;
}

/**
 * The key of the counter beside the stream at `key`: every append increments it and writes the
 * result into the entry (field `n`), so a reader can tell an entry it never saw from none.
 */
export function counterKey(key: string): string {
  return `${key}:seq`;
}

/**
 * The field names serve-sse writes: the topics (a JSON array), the formatted event, and the
 * counter's value when it was appended (see {@link counterKey}).
 */
export const TOPICS_FIELD = 't';
export const BODY_FIELD = 'b';
export const COUNT_FIELD = 'n';
/** Present when the publisher chose the event's id on the wire (see `LogEntry.alias`). */
export const ALIAS_FIELD = 'i';
/** Present (as `1`) on private events. */
export const PRIVATE_FIELD = 'p';

/** An entry serve-sse wrote, as read back. */
export interface CountedEntry {
  /** The event, as the hub hears it. */
  readonly entry: LogEntry;
  /**
   * The entry's place in the count of appends: 1 for the first, one more for each after it.
   * Undefined for an entry an older serve-sse wrote, before entries carried it.
   */
  readonly count: bigint | undefined;
}

/**
 * A count as the append script writes it: INCR's value, a positive 64-bit integer without leading
 * zeros (a bigint, since it may pass 2^53).
 */
const COUNT = /^[1-9]\d{0,18}$/;

/** An id that can go on an `id:` line: no line break, no NUL (the hub checked it when publishing). */
const ALIAS = /^[^\r\n\0]+$/;

/**
 * A body the hub can put after its `id:` line: whole lines of the fields `formatEvent` writes
 * (never `id`, which the log decides), ending in the one blank line that ends the event. Anything
 * else would let a foreign writer forge fields or run two events together on every client.
 */
const EVENT_BODY = /^(?:(?:event|data|retry)?:[^\r\n]*\n)*\n$/;

/** The entries of an XRANGE or XREVRANGE reply, in the reply's order. */
export function rangeEntries(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply)) throw unexpected('XRANGE', reply);
  return reply.map((item: unknown) => {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || !isLogId(item[0])) throw unexpected('XRANGE', reply);
    return { id: item[0], fields: item[1] };
  });
}

/** The entries of an XREAD reply on one stream; none when the read timed out. */
export function readEntries(reply: unknown): StreamEntry[] {
  if (reply === null) return [];
  if (!Array.isArray(reply)) throw unexpected('XREAD', reply);
  // One stream was asked for: `[[key, entries]]` in RESP2, `[key, entries]` (a flattened map) in RESP3.
  const pair: unknown = typeof reply[0] === 'string' ? reply : reply[0];
  if (!Array.isArray(pair) || pair.length !== 2) throw unexpected('XREAD', reply);
  return rangeEntries(pair[1]);
}

/** One field of an XINFO STREAM reply: a flat `[name, value, ...]` list, or a map. */
export function infoField(reply: unknown, name: string): unknown {
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) if (reply[i] === name) return reply[i + 1];
    return undefined;
  }
  if (reply !== null && typeof reply === 'object') return (reply as Record<string, unknown>)[name];
  throw unexpected('XINFO STREAM', reply);
}

/** The entry as the hub hears it, with its count, or why it is not one serve-sse wrote. */
export function toCountedEntry({ id, fields }: StreamEntry): CountedEntry | string {
  if (!Array.isArray(fields) || fields.length % 2 !== 0) return 'its fields are not name/value pairs';
  let topicsJson: unknown;
  let body: unknown;
  let countText: unknown;
  let alias: unknown;
  let isPrivate = false;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === TOPICS_FIELD) topicsJson = fields[i + 1];
    else if (fields[i] === BODY_FIELD) body = fields[i + 1];
    else if (fields[i] === COUNT_FIELD) countText = fields[i + 1];
    else if (fields[i] === ALIAS_FIELD) alias = fields[i + 1];
    else if (fields[i] === PRIVATE_FIELD) isPrivate = fields[i + 1] === '1';
  }
  if (typeof topicsJson !== 'string') return `it has no "${TOPICS_FIELD}" field`;
  if (typeof body !== 'string') return `it has no "${BODY_FIELD}" field`;
  const topics = topicsOf(topicsJson);
  if (typeof topics === 'string') return topics;
  if (!EVENT_BODY.test(body)) return `its "${BODY_FIELD}" field is not one formatted event`;
  let count: bigint | undefined;
  if (countText !== undefined) {
    if (typeof countText !== 'string' || !COUNT.test(countText)) return `its "${COUNT_FIELD}" field is not a count of appends`;
    count = BigInt(countText);
  }
  if (alias !== undefined && !(typeof alias === 'string' && ALIAS.test(alias))) return `its "${ALIAS_FIELD}" field is not an event id`;
  const entry: LogEntry = { id, topics, body, time: idTime(id) };
  return { entry: alias === undefined && !isPrivate ? entry : { ...entry, alias: alias as string | undefined, private: isPrivate }, count };
}

/**
 * The last topics field parsed, and its list: entries in a row mostly go to the same topics, and
 * then share one list (which nothing changes) instead of parsing it again.
 */
let lastTopicsJson = '';
let lastTopics: readonly string[] = [];

/** The topics of a topics field, or why it holds none. */
function topicsOf(json: string): readonly string[] | string {
  if (json === lastTopicsJson) return lastTopics;
  let topics: unknown;
  try {
    topics = JSON.parse(json);
  } catch {
    return `its "${TOPICS_FIELD}" field is not JSON`;
  }
  if (!Array.isArray(topics) || topics.length === 0 || !topics.every((topic) => typeof topic === 'string' && topic !== '')) {
    return `its "${TOPICS_FIELD}" field is not a list of topics`;
  }
  lastTopicsJson = json;
  lastTopics = Object.freeze(topics as string[]);
  return lastTopics;
}

/** When an entry entered the stream: Redis puts its clock's milliseconds in the id. */
export function idTime(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

function unexpected(command: string, reply: unknown): Error {
  const shown = JSON.stringify(reply)?.slice(0, 120) ?? String(reply);
  return new Error(`serve-sse: unexpected ${command} reply from Redis: ${shown}`);
}
