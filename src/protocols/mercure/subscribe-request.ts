/**
 * Reading a Mercure subscription request: which dialect it speaks (draft-07's `topic` selectors,
 * or draft-08's `match` and `match_urlpattern`), its selectors, and the id it resumes after. The
 * query string is decoded strictly: a selector that is not valid UTF-8, or holds a control
 * character, is refused rather than turned into something else.
 */
import type { MatcherKind } from './matchers.js';

export type Dialect = 'draft-07' | 'draft-08';

export interface SelectorSpec {
  readonly kind: MatcherKind;
  readonly source: string;
}

export interface SubscribeRequest {
  readonly dialect: Dialect;
  readonly selectors: readonly SelectorSpec[];
  /** The id to resume after; undefined for live events only. */
  readonly lastEventId: string | undefined;
  /** `earliest`: every event the history holds for these selectors. */
  readonly earliest: boolean;
}

/** Selectors in one request: each is a subscription, and matching costs per distinct selector. */
export const MAX_SELECTORS = 100;
/** Longest selector accepted, in characters. */
export const MAX_SELECTOR_LENGTH = 2048;
/** Longest last event id accepted; longer ones are refused rather than silently ignored. */
export const MAX_LAST_EVENT_ID_LENGTH = 1024;

/** The reserved value: replay everything. */
export const EARLIEST = 'earliest';

// C0, DEL and C1 controls: never in a topic or selector (both dialects).
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * The subscription a request asks for, or the sentence of its 400 answer.
 * @param query the raw query string, without `?`
 * @param lastEventIdHeader the `Last-Event-ID` header, which wins over the query parameters
 */
export function parseSubscribe(query: string, lastEventIdHeader: string | undefined): SubscribeRequest | { problem: string } {
  const params = decodeQuery(query);
  if (typeof params === 'string') return { problem: params };
  const selectors: SelectorSpec[] = [];
  let draft07 = false;
  let draft08 = false;
  let lastEventIdParam: string | undefined;
  for (const [name, value] of params) {
    let kind: MatcherKind | undefined;
    // Names are case-sensitive; match_urlpattern is an earlier draft-08's name for matchURLPattern.
    if (name === 'topic') {
      kind = 'template';
      draft07 = true;
    } else if (name === 'match' || name === 'matchExact') {
      kind = 'exact';
      draft08 = true;
    } else if (name === 'matchURLPattern' || name === 'match_urlpattern') {
      kind = 'urlpattern';
      draft08 = true;
    } else if (name.toLowerCase().startsWith('match')) {
      // The whole prefix is reserved: a misspelled matcher type fails loudly.
      return { problem: `unknown topic matcher parameter ${quote(name)}: use match, matchExact, match_urlpattern or matchURLPattern` };
    } else if (name === 'lastEventID' || name === 'last_event_id') {
      lastEventIdParam ??= value;
      continue;
    } else {
      continue;
    }
    if (value === '') return { problem: `an empty ${name} parameter selects nothing` };
    if (value.length > MAX_SELECTOR_LENGTH) return { problem: `a selector has at most ${MAX_SELECTOR_LENGTH} characters; ${quote(value)} has ${value.length}` };
    if (CONTROL.test(value)) return { problem: `the selector ${quote(value)} holds a control character` };
    selectors.push({ kind, source: value });
  }
  if (draft07 && draft08) return { problem: 'a request uses either topic (draft-07) or match and match_urlpattern (draft-08) parameters, not both' };
  if (selectors.length === 0) {
    return { problem: 'no topic selector: subscribe with ?topic=… (draft-07), or ?match=… and ?match_urlpattern=… (draft-08)' };
  }
  if (selectors.length > MAX_SELECTORS) return { problem: `${selectors.length} selectors given; at most ${MAX_SELECTORS} per request` };
  const lastEventId = lastEventIdHeader !== undefined && lastEventIdHeader !== '' ? lastEventIdHeader : lastEventIdParam;
  if (lastEventId !== undefined && (lastEventId.length > MAX_LAST_EVENT_ID_LENGTH || /[\r\n\0]/.test(lastEventId))) {
    return { problem: `the last event id must be at most ${MAX_LAST_EVENT_ID_LENGTH} characters without CR, LF or NUL` };
  }
  const earliest = lastEventId === EARLIEST;
  return {
    dialect: draft08 ? 'draft-08' : 'draft-07',
    selectors: dedupe(selectors),
    lastEventId: earliest || lastEventId === '' ? undefined : lastEventId,
    earliest,
  };
}

/**
 * The query's name/value pairs, decoded strictly (a malformed escape or invalid UTF-8 is an
 * error, where URLSearchParams would substitute U+FFFD), or the sentence of a 400 answer.
 */
export function decodeQuery(query: string): Array<[string, string]> | string {
  const pairs: Array<[string, string]> = [];
  if (query === '') return pairs;
  for (const part of query.split('&')) {
    if (part === '') continue;
    const equals = part.indexOf('=');
    const rawName = equals === -1 ? part : part.slice(0, equals);
    const rawValue = equals === -1 ? '' : part.slice(equals + 1);
    try {
      pairs.push([decodeURIComponent(rawName.replace(/\+/g, ' ')), decodeURIComponent(rawValue.replace(/\+/g, ' '))]);
    } catch {
      return `the query parameter ${quote(rawName)} is not valid UTF-8 once decoded`;
    }
  }
  return pairs;
}

/** A subscription per distinct selector: the same one twice is one subscription. */
function dedupe(selectors: SelectorSpec[]): SelectorSpec[] {
  const seen = new Set<string>();
  return selectors.filter(({ kind, source }) => {
    const key = `${kind}:${source}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** A value for a message: quoted, and cut short, since it comes from the client. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}
