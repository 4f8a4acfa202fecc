/**
 * What a verified token allows, in either dialect, as a {@link Grant}.
 *
 * - draft-07: the `mercure` claim, `{ publish?: string[], subscribe?: string[], payload?: any }`;
 *   selectors are URI templates (or exact strings, or `*`).
 * - draft-08 (`typ: at+jwt`): the `authorization_details` claim (RFC 9396), whose entries of type
 *   `mercure` (current text) or `https://mercure.rocks/authorization-detail` (the snapshot that
 *   clients send today) carry `actions`, `topics` and an optional `payload`. Entries of other
 *   types belong to other resources and are left alone; one malformed Mercure entry invalidates
 *   the whole token (no partial acceptance).
 *
 * A claim the hub cannot use is a defect of the token: {@link ClaimsError}, answered as
 * `invalid_token`.
 */
import type { PrivateAccess } from '../../../hub/interest.js';
import { compileSelector, type MatcherKind, type Selector } from '../matchers.js';
import type { TokenVia } from './tokens.js';

export type AuthDialect = 'draft-07' | 'draft-08';

/** What a valid token allows, and how it came. */
export interface Grant {
  readonly dialect: AuthDialect;
  /** Selectors of the topics the token may publish to; empty: none. */
  readonly publish: readonly Selector[];
  /** Selectors of the topics whose private updates the token may receive; empty: none. */
  readonly subscribe: readonly Selector[];
  /**
   * The payload attached to a subscription whose own selector is `selectorSource`: draft-07 the
   * one `mercure.payload`; draft-08 the `payload` of the first subscribe detail one of whose
   * topics matches `selectorSource` treated as a topic. Undefined when there is none.
   */
  payloadFor(selectorSource: string): unknown;
  /** Expiry, in seconds since the epoch (always present for draft-08). */
  readonly exp?: number;
  /** The `sub` claim, when it is a string. */
  readonly sub?: string;
  readonly via: TokenVia;
}

/** A grant before it is known how the token came: what the cache keeps. */
export type GrantClaims = Omit<Grant, 'via'>;

/** Most `mercure` authorization details in one token. */
export const MAX_AUTHORIZATION_DETAILS = 100;
/** Most topic matchers in one detail's `topics`. */
export const MAX_DETAIL_TOPICS = 100;
/** Most selectors in one token, both actions and (draft-08) all details together. */
export const MAX_GRANT_SELECTORS = 1000;
/** Longest selector (`match` value, or draft-07 selector), in characters: as long as a subscription's selector may be. */
export const MAX_PATTERN_LENGTH = 2048;

/** The `type` values of a Mercure authorization detail. */
export const AUTHORIZATION_DETAIL_TYPES: readonly string[] = ['mercure', 'https://mercure.rocks/authorization-detail'];

/** A claim that makes the token unusable. The message is for the log, never for the client. */
export class ClaimsError extends Error {
  override readonly name = 'ClaimsError';
}

export interface ClaimsOptions {
  /** The hub's URL, against which relative URL patterns are resolved. */
  base: string;
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function common(payload: Record<string, unknown>): { exp?: number; sub?: string } {
  const out: { exp?: number; sub?: string } = {};
  if (typeof payload.exp === 'number') out.exp = payload.exp;
  if (typeof payload.sub === 'string') out.sub = payload.sub;
  return out;
}

function checkPattern(source: unknown, where: string): string {
  if (typeof source !== 'string') throw new ClaimsError(`${where} must be a string`);
  if (source === '') throw new ClaimsError(`${where} is empty`);
  if (source.length > MAX_PATTERN_LENGTH) throw new ClaimsError(`${where} is longer than ${MAX_PATTERN_LENGTH} characters`);
  if (CONTROL.test(source)) throw new ClaimsError(`${where} holds a control character`);
  return source;
}

/** The selectors a token grants, deduplicated by key, in order. */
class SelectorList {
  readonly #byKey = new Map<string, Selector>();
  readonly #counter: { count: number };

  constructor(counter: { count: number }) {
    this.#counter = counter;
  }

  add(selector: Selector): void {
    if (++this.#counter.count > MAX_GRANT_SELECTORS) throw new ClaimsError(`more than ${MAX_GRANT_SELECTORS} selectors`);
    if (!this.#byKey.has(selector.key)) this.#byKey.set(selector.key, selector);
  }

  get list(): readonly Selector[] {
    return Object.freeze([...this.#byKey.values()]);
  }
}

const isMatcherError = (error: unknown): boolean => error instanceof Error && error.name === 'MatcherError';

/** The draft-07 grant of a verified payload. */
export function draft07Claims(payload: Record<string, unknown>, options: ClaimsOptions): GrantClaims {
  const claim = payload.mercure;
  const counter = { count: 0 };
  const publish = new SelectorList(counter);
  const subscribe = new SelectorList(counter);
  let tokenPayload: unknown;
  if (claim !== undefined) {
    if (!isObject(claim)) throw new ClaimsError('the mercure claim must be an object');
    for (const [action, list] of [['publish', publish], ['subscribe', subscribe]] as const) {
      const selectors = claim[action];
      if (selectors === undefined || selectors === null) continue;
      if (!Array.isArray(selectors)) throw new ClaimsError(`mercure.${action} must be an array of topic selectors`);
      selectors.forEach((source, index) => list.add(template(checkPattern(source, `mercure.${action}[${index}]`), options)));
    }
    tokenPayload = claim.payload;
  }
  return Object.freeze({
    dialect: 'draft-07',
    publish: publish.list,
    subscribe: subscribe.list,
    payloadFor: () => tokenPayload,
    ...common(payload),
  });
}

/**
 * A draft-07 selector: a URI template, which is also matched exactly (draft-07's steps 2 and 3); a
 * string that is not a valid template is still a selector, matched exactly.
 */
function template(source: string, options: ClaimsOptions): Selector {
  try {
    return compileSelector('template', source, options);
  } catch (error) {
    if (!isMatcherError(error)) throw error;
    return compileSelector('exact', source, options);
  }
}

interface Detail {
  readonly publish: boolean;
  readonly subscribe: boolean;
  readonly topics: readonly Selector[];
  readonly payload: Record<string, unknown> | undefined;
}

const ACTIONS = new Set(['publish', 'subscribe']);
/** `matchType` (current text) and `match_type` (snapshot) values, each spelled its own way. */
const MATCH_TYPES: Record<'matchType' | 'match_type', Record<string, MatcherKind>> = {
  matchType: { Exact: 'exact', URLPattern: 'urlpattern' },
  match_type: { exact: 'exact', urlpattern: 'urlpattern' },
};

/** The draft-08 grant of a verified payload. */
export function draft08Claims(payload: Record<string, unknown>, options: ClaimsOptions): GrantClaims {
  const raw = payload.authorization_details;
  const details: Detail[] = [];
  if (raw !== undefined) {
    if (!Array.isArray(raw)) throw new ClaimsError('authorization_details must be an array');
    const counter = { count: 0 };
    raw.forEach((entry: unknown, index) => {
      // RFC 9396 §2: every entry is an object with a string type.
      if (!isObject(entry) || typeof entry.type !== 'string') throw new ClaimsError(`authorization_details[${index}] must be an object with a string type`);
      if (!AUTHORIZATION_DETAIL_TYPES.includes(entry.type)) return;
      if (details.length === MAX_AUTHORIZATION_DETAILS) throw new ClaimsError(`more than ${MAX_AUTHORIZATION_DETAILS} mercure authorization details`);
      details.push(detail(entry, `authorization_details[${index}]`, counter, options));
    });
  }
  const counter = { count: 0 };
  const publish = new SelectorList(counter);
  const subscribe = new SelectorList(counter);
  for (const entry of details) {
    for (const selector of entry.topics) {
      if (entry.publish) publish.add(selector);
      if (entry.subscribe) subscribe.add(selector);
    }
  }
  const subscribers = details.filter((entry) => entry.subscribe);
  return Object.freeze({
    dialect: 'draft-08',
    publish: publish.list,
    subscribe: subscribe.list,
    payloadFor(selectorSource: string): unknown {
      // The first subscribe detail that matches decides, as the spec words it: when it has no
      // payload, the subscription has none, even if a later detail would have given one.
      for (const entry of subscribers) if (entry.topics.some((selector) => selector.matches(selectorSource))) return entry.payload;
      return undefined;
    },
    ...common(payload),
  });
}

function detail(entry: Record<string, unknown>, where: string, counter: { count: number }, options: ClaimsOptions): Detail {
  const { actions, topics, payload } = entry;
  if (!Array.isArray(actions) || actions.length === 0) throw new ClaimsError(`${where}.actions must be a non-empty array`);
  for (const action of actions) {
    if (typeof action !== 'string' || !ACTIONS.has(action)) throw new ClaimsError(`${where}.actions holds ${JSON.stringify(action)}, not publish or subscribe`);
  }
  if (!Array.isArray(topics) || topics.length === 0) throw new ClaimsError(`${where}.topics must be a non-empty array`);
  if (topics.length > MAX_DETAIL_TOPICS) throw new ClaimsError(`${where}.topics has more than ${MAX_DETAIL_TOPICS} entries`);
  if (payload !== undefined && !isObject(payload)) throw new ClaimsError(`${where}.payload must be a JSON object`);
  const selectors = topics.map((topic: unknown, index) => {
    const at = `${where}.topics[${index}]`;
    if (++counter.count > MAX_GRANT_SELECTORS) throw new ClaimsError(`more than ${MAX_GRANT_SELECTORS} topic matchers`);
    if (!isObject(topic)) throw new ClaimsError(`${at} must be an object`);
    const source = checkPattern(topic.match, `${at}.match`);
    const kind = matchKind(topic, at);
    try {
      return compileSelector(kind, source, options);
    } catch (error) {
      // A pattern the matcher refuses invalidates the token like any other malformed entry.
      throw new ClaimsError(`${at}: ${(error as Error).message}`, { cause: error });
    }
  });
  return {
    publish: actions.includes('publish'),
    subscribe: actions.includes('subscribe'),
    topics: selectors,
    payload: payload as Record<string, unknown> | undefined,
  };
}

function matchKind(topic: Record<string, unknown>, at: string): MatcherKind {
  const given = (['matchType', 'match_type'] as const).filter((name) => topic[name] !== undefined);
  if (given.length === 0) return 'exact';
  if (given.length > 1) throw new ClaimsError(`${at} has both matchType and match_type`);
  const name = given[0]!;
  const value = topic[name];
  const kind = typeof value === 'string' && Object.hasOwn(MATCH_TYPES[name], value) ? MATCH_TYPES[name][value] : undefined;
  if (kind === undefined) throw new ClaimsError(`${at}.${name} is ${JSON.stringify(value)}, not ${Object.keys(MATCH_TYPES[name]).join(' or ')}`);
  return kind;
}

/** Whether one of `selectors` matches `topic`. */
export function allows(selectors: readonly Selector[], topic: string): boolean {
  for (const selector of selectors) if (selector.matches(topic)) return true;
  return false;
}

const accessBySelectors = new WeakMap<readonly Selector[], PrivateAccess>();

/**
 * The private updates a grant's holder may receive, as the hub's {@link PrivateAccess}: those with
 * a topic one of its subscribe selectors matches. Grants with the same selectors share one key (and
 * so their bytes on the wire); undefined when the grant allows no private update.
 */
export function privateAccess(grant: Grant | undefined): PrivateAccess | undefined {
  if (grant === undefined || grant.subscribe.length === 0) return undefined;
  const selectors = grant.subscribe;
  let access = accessBySelectors.get(selectors);
  if (access === undefined) {
    access = { key: `mercure:${JSON.stringify(selectors.map((selector) => selector.key).sort())}`, allows: (topic) => allows(selectors, topic) };
    accessBySelectors.set(selectors, access);
  }
  return access;
}
