/**
 * The body of `POST /publish`: JSON `{"topic": "a" | "topics": [...], "event"?, "data"}`, or the
 * same fields form-encoded (`topic` and `topics` may repeat). Anything else is refused with the
 * status and a sentence that says what is wrong: 415 for another content type, 413 over the size
 * limit, 400 for a malformed body.
 */
import type { IncomingMessage } from 'node:http';
import { topicsProblem } from './topics.js';

export interface Publication {
  topics: string[];
  event: string | undefined;
  /** A string is sent as is; anything else JSON-encoded. */
  data: unknown;
}

export type BodyResult = { ok: true; publication: Publication } | { ok: false; status: 400 | 413 | 415; message: string };

const FIELDS = ['topic', 'topics', 'event', 'data'];
const MAX_EVENT_LENGTH = 256;
const CONTROL = /\p{Cc}/u;

/** Reads and checks a publication; rejects only if the client goes away mid-body. */
export async function readPublication(request: IncomingMessage, maxBody: number): Promise<BodyResult> {
  const kind = contentKind(request.headers['content-type']);
  if (typeof kind !== 'string') return kind;
  const body = await readBody(request, maxBody);
  if (body === undefined) return { ok: false, status: 413, message: `the body is larger than the limit of ${maxBody} bytes` };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return malformed('the body is not valid UTF-8');
  }
  return kind === 'json' ? fromJson(text) : fromForm(text);
}

function contentKind(header: string | undefined): 'json' | 'form' | BodyResult {
  const [essence = '', ...params] = (header ?? '').split(';').map((part) => part.trim().toLowerCase());
  const charset = params.find((param) => param.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8' && charset !== 'us-ascii') {
    return { ok: false, status: 415, message: `charset ${charset} is not supported; send UTF-8` };
  }
  if (essence === 'application/json') return 'json';
  if (essence === 'application/x-www-form-urlencoded') return 'form';
  const got = essence === '' ? 'no Content-Type' : `Content-Type ${essence}`;
  return { ok: false, status: 415, message: `${got}: send application/json or application/x-www-form-urlencoded` };
}

/** The whole body, or undefined as soon as it passes `max` bytes (the rest is not read). */
function readBody(request: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const declared = Number(request.headers['content-length']);
  if (declared > max) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
      request.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > max) {
        cleanup();
        // Stop buffering what the client keeps sending; the 413 closes the connection.
        request.pause();
        resolve(undefined);
      } else chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onClose = (): void => onError(new Error('the client went away before sending the whole body'));
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
    request.on('close', onClose);
  });
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
