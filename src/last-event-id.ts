/**
 * Reading the id a reconnecting client resumes from. It is untrusted input: a length limit, no
 * control characters a compliant client could never have received, and UTF-8 as the spec says.
 */

import { requestHeader } from './request-header.js';
import type { SseRequest } from './stream.js';

/** Default longest id accepted, in characters. */
export const DEFAULT_MAX_LAST_EVENT_ID_LENGTH = 1024;
const QUERY_PARAMETER = 'lastEventId';
const INVALID = /[\r\n\0]/;
const NON_ASCII = /[^\x00-\x7f]/;
const utf8 = new TextDecoder();

/** The last event id a request carries, whichever kind of request it is. */
export function lastEventIdOf(request: SseRequest, maxLength = DEFAULT_MAX_LAST_EVENT_ID_LENGTH): string | undefined {
  return readLastEventId(requestHeader(request, 'last-event-id'), request.url, maxLength);
}

/**
 * The client's last event id: the `Last-Event-ID` header, or else the `lastEventId` query
 * parameter (an `EventSource` cannot set headers on its first connection; polyfills use it).
 * Values longer than `maxLength` characters, or that hold CR, LF or NUL, count as absent.
 */
export function readLastEventId(
  header: string | string[] | null | undefined,
  url: string | undefined,
  maxLength: number,
): string | undefined {
  let value: string | null | undefined = Array.isArray(header) ? header[0] : header;
  if (value !== undefined && value !== null) {
    // HTTP stacks hand header bytes over as Latin-1; browsers send the id as UTF-8.
    if (NON_ASCII.test(value)) value = utf8.decode(Uint8Array.from(value, (char) => char.charCodeAt(0) & 0xff));
  } else {
    value = queryParameter(url);
  }
  if (value === undefined || value === null || value === '' || value.length > maxLength || INVALID.test(value)) {
    return undefined;
  }
  return value;
}

function queryParameter(url: string | undefined): string | null | undefined {
  if (url === undefined) return undefined;
  const start = url.indexOf('?');
  // Most connections carry no such parameter: skip parsing the query string for them.
  if (start === -1 || !url.includes(QUERY_PARAMETER, start)) return undefined;
  const end = url.indexOf('#', start);
  return new URLSearchParams(url.slice(start + 1, end === -1 ? undefined : end)).get(QUERY_PARAMETER);
}
