/**
 * Mercure's active subscriptions: an event (a private update) when a subscription starts or
 * ends, and the subscriptions API that lists them, over a {@link Presence} so that with a shared
 * store every instance lists every instance's subscribers.
 *
 * The two dialects name a subscription's topic differently: draft-07
 * `/.well-known/mercure/subscriptions/{topic}/{subscriber}`, draft-08
 * `/.well-known/mercure/subscriptions/{matchType}/{match}/{subscriber}`. Each event carries both,
 * the subscription's own dialect's as its canonical topic and the other as an alternate, and its
 * document has the fields of both (each dialect allows more than it names): a watcher of either
 * dialect sees every subscription, in one event.
 */
import type { Presence, PresenceEntry } from '../../backplanes/presence.js';
import type { MatcherKind } from './matchers.js';
import type { Dialect, SelectorSpec } from './subscribe-request.js';

export const SUBSCRIPTIONS_PATH = '/.well-known/mercure/subscriptions';
const CONTEXT = 'https://mercure.rocks/';

/** The draft-08 matcher type names, in their canonical case; draft-07 templates are `URITemplate`. */
const MATCH_TYPES: Record<MatcherKind, string> = { exact: 'Exact', urlpattern: 'URLPattern', template: 'URITemplate' };
/** By the name in a path, which is case-sensitive (draft-08). */
const KINDS_BY_TYPE = new Map<string, MatcherKind>([
  ['Exact', 'exact'],
  ['URLPattern', 'urlpattern'],
  ['URITemplate', 'template'],
]);

/** What the API and the events show of one subscription. */
export interface SubscriptionDocument {
  '@context'?: string;
  id: string;
  type: 'Subscription';
  /** draft-07: the selector. */
  topic: string;
  /** draft-08: the selector and its type. */
  match: string;
  matchType: string;
  subscriber: string;
  active: boolean;
  payload?: unknown;
}

/** RFC 6570 simple expansion of one value: every character outside the unreserved set is percent-encoded, once. */
export function expandValue(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The topics of a subscription's events: its dialect's form first, then the other. */
export function subscriptionTopics(selector: SelectorSpec, dialect: Dialect, subscriber: string): [string, string] {
  const draft07 = `${SUBSCRIPTIONS_PATH}/${expandValue(selector.source)}/${expandValue(subscriber)}`;
  const draft08 = `${SUBSCRIPTIONS_PATH}/${MATCH_TYPES[selector.kind]}/${expandValue(selector.source)}/${expandValue(subscriber)}`;
  return dialect === 'draft-07' ? [draft07, draft08] : [draft08, draft07];
}

export function subscriptionDocument(selector: SelectorSpec, dialect: Dialect, subscriber: string, active: boolean, payload: unknown): SubscriptionDocument {
  const [id] = subscriptionTopics(selector, dialect, subscriber);
  const document: SubscriptionDocument = {
    '@context': CONTEXT,
    id,
    type: 'Subscription',
    topic: selector.source,
    match: selector.source,
    matchType: MATCH_TYPES[selector.kind],
    subscriber,
    active,
  };
  if (payload !== undefined) document.payload = payload;
  return document;
}

/** A presence entry's document as the API and the events show it: without the event topics kept beside it. */
export function shownDocument(data: unknown): SubscriptionDocument {
  const { topics: _topics, ...document } = data as SubscriptionDocument & { topics?: unknown };
  return document;
}

/** The presence group of a selector: what `/subscriptions/{topic}` lists. */
export function presenceGroup(selector: SelectorSpec): string {
  return `${selector.kind}:${selector.source}`;
}

/** What a subscriptions API path asks for, or undefined when it is no such path. */
export type SubscriptionsQuery =
  | { kind: 'all' }
  | { kind: 'selector'; selector: SelectorSpec; sources: readonly string[] }
  | { kind: 'one'; selector: SelectorSpec; sources: readonly string[]; subscriber: string };

/**
 * Reads `/subscriptions`, `/subscriptions/{topic}[/{subscriber}]` (draft-07) and
 * `/subscriptions/{matchType}/{match}[/{subscriber}]` (draft-08), relative to the hub's path.
 * A draft-07 selector may be of any kind (it only names a source), so `sources` lists the groups
 * it may mean.
 */
export function parseSubscriptionsPath(path: string): SubscriptionsQuery | undefined {
  if (path === '/subscriptions' || path === '/subscriptions/') return { kind: 'all' };
  if (!path.startsWith('/subscriptions/')) return undefined;
  let parts: string[];
  try {
    parts = path.slice('/subscriptions/'.length).split('/').map((part) => decodeURIComponent(part));
  } catch {
    return undefined;
  }
  const typed = parts.length >= 2 ? KINDS_BY_TYPE.get(parts[0]!) : undefined;
  if (typed !== undefined && parts.length <= 3) {
    const selector = { kind: typed, source: parts[1]! };
    const sources = [presenceGroup(selector)];
    return parts.length === 2 ? { kind: 'selector', selector, sources } : { kind: 'one', selector, sources, subscriber: parts[2]! };
  }
  if (parts.length > 2 || parts[0] === '') return undefined;
  // draft-07 names the selector alone: it may be a subscription of either dialect.
  const source = parts[0]!;
  const selector: SelectorSpec = { kind: 'template', source };
  const sources = (['template', 'exact', 'urlpattern'] as const).map((kind) => presenceGroup({ kind, source }));
  return parts.length === 1 ? { kind: 'selector', selector, sources } : { kind: 'one', selector, sources, subscriber: parts[1]! };
}

/** The API's answer for a query: a collection, one subscription, or undefined (404). */
export async function subscriptionsDocument(
  presence: Presence,
  query: SubscriptionsQuery,
  requestPath: string,
  lastEventId: string | undefined,
): Promise<Record<string, unknown> | undefined> {
  const lastEventID = lastEventId ?? 'earliest';
  if (query.kind === 'one') {
    const entries = await listGroups(presence, query.sources);
    const found = entries.find((entry) => (entry.data as SubscriptionDocument).subscriber === query.subscriber);
    if (found === undefined) return undefined;
    return { ...shownDocument(found.data), '@context': CONTEXT, lastEventID };
  }
  const entries = query.kind === 'all' ? await presence.list() : await listGroups(presence, query.sources);
  const subscriptions = entries.map((entry) => {
    const { '@context': _context, ...document } = shownDocument(entry.data);
    return document;
  });
  return { '@context': CONTEXT, id: requestPath, type: 'Subscriptions', lastEventID, subscriptions };
}

async function listGroups(presence: Presence, groups: readonly string[]): Promise<PresenceEntry[]> {
  const lists = await Promise.all(groups.map((group) => presence.list({ group })));
  return lists.flat();
}
