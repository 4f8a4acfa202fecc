/**
 * Reading a Mercure publication: the form fields of a `POST`, checked as draft-08 checks them
 * (it adds 400s to draft-07 for values that would break the stream or forge the hub's own
 * events), for both dialects. Unknown fields are ignored, as both require; a known field given
 * twice counts once, first value first, as Mercure's own hub reads it.
 */
import { decodeQuery, quote } from './subscribe-request.js';

export interface Publication {
  /** The first is the canonical topic, the others alternates (draft-07). */
  readonly topics: readonly string[];
  readonly data: string | undefined;
  readonly private: boolean;
  readonly id: string | undefined;
  readonly type: string | undefined;
  readonly retry: number | undefined;
}

export type PublicationResult = { ok: true; publication: Publication } | { ok: false; status: 400 | 403 | 413; problem: string };

/** Topics in one publication. */
export const MAX_PUBLISH_TOPICS = 100;
/** Longest topic, id or type, in characters. */
export const MAX_FIELD_LENGTH = 2048;

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** The path the hub keeps for what it publishes itself (subscription events). */
const RESERVED_PATH = '/.well-known/mercure';

/** @param base the hub's URL, against which a topic is resolved to see if it is in the reserved namespace */
export function parsePublication(body: string, base: string): PublicationResult {
  const pairs = decodeQuery(body);
  if (typeof pairs === 'string') return bad(pairs.replace('query parameter', 'form field'));
  const topics: string[] = [];
  const first = new Map<string, string>();
  let isPrivate = false;
  for (const [name, value] of pairs) {
    if (name === 'topic') topics.push(value);
    else if (name === 'private') isPrivate = true;
    else if (!first.has(name)) first.set(name, value);
  }
  if (topics.length === 0) return bad('a publication needs a topic field');
  // Over a limit is "too large" (413), as draft-08 says; malformed is 400.
  if (topics.length > MAX_PUBLISH_TOPICS) return tooLarge(`${topics.length} topics given; at most ${MAX_PUBLISH_TOPICS}`);
  for (const topic of topics) {
    if (topic === '') return bad('a topic must not be empty');
    if (topic.length > MAX_FIELD_LENGTH) return tooLarge(`a topic has at most ${MAX_FIELD_LENGTH} characters`);
    if (CONTROL.test(topic)) return bad(`the topic ${quote(topic)} holds a control character`);
    if (topic === '*') return bad('"*" is not a topic: in selectors it means every topic');
    if (inReservedNamespace(topic, base)) {
      return { ok: false, status: 403, problem: `the topic ${quote(topic)} is in the hub's own namespace (${RESERVED_PATH}): only the hub publishes there` };
    }
  }
  const id = first.get('id');
  if (id !== undefined) {
    if (id === '') return bad('an id must not be empty');
    if (id.length > MAX_FIELD_LENGTH) return tooLarge(`an id has at most ${MAX_FIELD_LENGTH} characters`);
    if (id.startsWith('#')) return bad('an id must not start with "#": those are the hub\'s');
    if (/[\r\n\0]/.test(id)) return bad('an id must not hold CR, LF or NUL');
    if (id === 'earliest') return bad('"earliest" is reserved: it asks for the whole history when subscribing');
  }
  const type = first.get('type');
  if (type !== undefined) {
    if (type === '') return bad('a type must not be empty');
    if (type.length > MAX_FIELD_LENGTH) return tooLarge(`a type has at most ${MAX_FIELD_LENGTH} characters`);
    if (/[\r\n]/.test(type)) return bad('a type must not hold CR or LF');
    if (type === 'mercure') return bad('the type "mercure" is reserved for the hub\'s own events');
  }
  const retryText = first.get('retry');
  let retry: number | undefined;
  if (retryText !== undefined) {
    if (!/^\d+$/.test(retryText)) return bad('retry must be ASCII digits: a reconnection time in milliseconds');
    if (retryText.length > 15) return tooLarge(`retry has at most 15 digits; got ${retryText.length}`);
    retry = Number(retryText);
  }
  return { ok: true, publication: { topics, data: first.get('data'), private: isPrivate, id, type, retry } };
}

/**
 * Whether a topic addresses the hub's reserved namespace once resolved against its URL: the path,
 * not a prefix of the raw value, so that an absolute topic on the hub's own host cannot slip by.
 */
export function inReservedNamespace(topic: string, base: string): boolean {
  let path: string;
  try {
    path = new URL(topic, base).pathname;
  } catch {
    return false;
  }
  return path === RESERVED_PATH || path.startsWith(`${RESERVED_PATH}/`);
}

function bad(problem: string): PublicationResult {
  return { ok: false, status: 400, problem };
}

function tooLarge(problem: string): PublicationResult {
  return { ok: false, status: 413, problem };
}
