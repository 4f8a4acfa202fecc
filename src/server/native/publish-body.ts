/**
 * The body of `POST /publish`: JSON `{"topic": "a" | "topics": [...], "event"?, "data"}`, or the
 * same fields form-encoded (`topic` and `topics` may repeat). Anything else is refused with the
 * status and a sentence that says what is wrong: 415 for another content type, 413 over the size
 * limit, 408 for a body that does not arrive in time, 400 for a malformed body.
 */
import type { IncomingMessage } from 'node:http';
import { contentType, readBody, type BodyLimits } from '../../request-body.js';
import { topicsProblem } from './topics.js';

export type { BodyLimits } from '../../request-body.js';

export interface Publication {
  topics: string[];
  event: string | undefined;
  /** A string is sent as is; anything else JSON-encoded. */
  data: unknown;
}

export type BodyResult = { ok: true; publication: Publication } | { ok: false; status: 400 | 408 | 413 | 415; message: string };

const FIELDS = ['topic', 'topics', 'event', 'data'];
const MAX_EVENT_LENGTH = 256;
const CONTROL = /\p{Cc}/u;

/** Reads and checks a publication; rejects only if the client goes away mid-body. */
export async function readPublication(request: IncomingMessage, limits: BodyLimits): Promise<BodyResult> {
  const kind = contentKind(request.headers['content-type']);
  if (typeof kind !== 'string') return kind;
  const body = await readBody(request, limits);
  if (body === 'too large') return { ok: false, status: 413, message: `the body is larger than the limit of ${limits.maxBody} bytes` };
  if (body === 'too slow') {
    return { ok: false, status: 408, message: `the body did not arrive within ${limits.bodyTimeout} ms of the request head (--body-timeout)` };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return malformed('the body is not valid UTF-8');
  }
  return kind === 'json' ? fromJson(text) : fromForm(text);
}

/**
 * Reads a body only to throw it away (a publication refused before its body was read): answering
 * and closing with the body still unread would reset the connection, and a reset can lose the
 * answer. Resolves at the end of the body, past the limits (the rest is left unread then), or when
 * the client goes.
 */
export async function discardBody(request: IncomingMessage, limits: BodyLimits): Promise<void> {
  await readBody(request, limits, false).catch(() => {});
}

function contentKind(header: string | undefined): 'json' | 'form' | BodyResult {
  const { essence, charset, utf8 } = contentType(header);
  if (!utf8) return { ok: false, status: 415, message: `charset ${charset} is not supported; send UTF-8` };
  if (essence === 'application/json') return 'json';
  if (essence === 'application/x-www-form-urlencoded') return 'form';
  const got = essence === '' ? 'no Content-Type' : `Content-Type ${essence}`;
  return { ok: false, status: 415, message: `${got}: send JSON with Content-Type: application/json, or form fields with application/x-www-form-urlencoded` };
}

function fromJson(text: string): BodyResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return malformed(`the body is not valid JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return malformed('the JSON body must be an object: {"topic": "...", "event"?: "...", "data": ...}');
  }
  const fields = value as Record<string, unknown>;
  const unknown = unknownField(Object.keys(fields));
  if (unknown !== undefined) return malformed(unknown);
  const topics: string[] = [];
  if (fields.topic !== undefined) {
    if (typeof fields.topic !== 'string') return malformed('"topic" must be a string');
    topics.push(fields.topic);
  }
  if (fields.topics !== undefined) {
    if (!Array.isArray(fields.topics) || !fields.topics.every((topic) => typeof topic === 'string')) {
      return malformed('"topics" must be an array of strings');
    }
    topics.push(...(fields.topics as string[]));
  }
  if (fields.event !== undefined && typeof fields.event !== 'string') return malformed('"event" must be a string');
  // Present with any JSON value, null included; only absence is an error.
  if (!('data' in fields)) return malformed('"data" is missing');
  return checked(topics, fields.event as string | undefined, fields.data);
}

function fromForm(text: string): BodyResult {
  // `curl -d '{"topic": ...}'` sends JSON labelled as a form: say what to change, rather than
  // naming a field made of the whole JSON text.
  if (/^\s*[{[]/.test(text)) {
    return malformed('the body looks like JSON but came as a form (Content-Type: application/x-www-form-urlencoded, what curl -d sends): send it with Content-Type: application/json');
  }
  const form = new URLSearchParams(text);
  const unknown = unknownField([...form.keys()]);
  if (unknown !== undefined) return malformed(unknown);
  const events = form.getAll('event');
  const data = form.getAll('data');
  if (events.length > 1) return malformed('"event" is given more than once');
  if (data.length > 1) return malformed('"data" is given more than once');
  if (data.length === 0) return malformed('"data" is missing');
  return checked([...form.getAll('topic'), ...form.getAll('topics')], events[0], data[0]);
}

function checked(topics: string[], event: string | undefined, data: unknown): BodyResult {
  const topicProblem = topicsProblem(topics);
  if (topicProblem !== undefined) return malformed(topicProblem);
  if (event !== undefined) {
    if (event === '' || event.length > MAX_EVENT_LENGTH || CONTROL.test(event)) {
      return malformed(`"event" must be 1 to ${MAX_EVENT_LENGTH} characters without control characters`);
    }
  }
  return { ok: true, publication: { topics: [...new Set(topics)], event, data } };
}

function unknownField(keys: string[]): string | undefined {
  const extra = keys.find((key) => !FIELDS.includes(key));
  if (extra === undefined) return undefined;
  if (extra === 'id') return '"id" cannot be given: the hub assigns every event its id';
  return `unknown field ${JSON.stringify(extra.slice(0, 64))}; expected topic, topics, event and data`;
}

function malformed(message: string): BodyResult {
  return { ok: false, status: 400, message };
}
