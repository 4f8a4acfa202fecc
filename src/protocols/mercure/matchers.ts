/**
 * Mercure topic selectors, compiled into the hub's {@link TopicMatcher}s.
 *
 * Three kinds, and the reserved `*` (every topic, whatever the kind: both dialects reserve it):
 * - `exact` (draft-08 `match`): byte-for-byte, case-sensitive, no normalization, no resolution.
 * - `template` (draft-07 `topic`, Mercure 0.x): equal strings match (a template matches the same
 *   template, for authorization), and a valid RFC 6570 URI Template matches its possible
 *   expansions; a string that is not a valid template matches by equality only
 *   (`matchers/template.ts`).
 * - `urlpattern` (draft-08 `match_urlpattern` / `matchURLPattern`): a WHATWG URL Pattern, absolute
 *   or relative to the hub's URL, as are relative topics (`matchers/urlpattern.ts`).
 *
 * Linear time, whatever the selector. Subscribers choose selectors, and JavaScript's RegExp
 * backtracks: a URL pattern like `/*a*a*a*a*b` or a template of adjacent variables would take
 * exponential or high-polynomial time on a long topic. So the pattern languages' semantics come from
 * where they are defined (the urlpattern-polyfill package for URL Patterns, RFC 6570 for templates)
 * but their regular expressions are executed by re2js, a port of RE2 whose time is linear in the
 * topic's length (`matchers/re2.ts`); constructs it cannot run that way (lookaround,
 * backreferences) are refused, as are selectors longer than {@link MAX_SELECTOR_LENGTH} or whose
 * programs exceed {@link MAX_PROGRAM_SIZE} instructions (the linear constant), and a topic longer
 * than {@link MAX_TOPIC_LENGTH} never matches a pattern, without being looked at.
 *
 * Speed. A selector is compiled once per (kind, source): a bounded shared cache hands subscribers
 * that send the same selector the same {@link Selector} object, and each pattern selector keeps a
 * bounded cache of its results by topic. Exact selectors and `*` cost a string comparison.
 */
import type { TopicMatcher } from '../../hub/interest.js';
import { BoundedCache } from './matchers/cache.js';
import { MatcherError, quote } from './matchers/errors.js';
import { compileTemplate, parseTemplate } from './matchers/template.js';
import { compileUrlPattern } from './matchers/urlpattern.js';
import { MAX_PROGRAM_SIZE } from './matchers/re2.js';

export { MatcherError } from './matchers/errors.js';
export { MAX_PROGRAM_SIZE } from './matchers/re2.js';

/** The kinds of selector Mercure has: `exact` (draft-08 `match`), `template` (draft-07 `topic`), `urlpattern`. */
export type MatcherKind = 'exact' | 'template' | 'urlpattern';

export interface MatcherOptions {
  /** The hub's own URL, against which relative URL patterns and topics are resolved. */
  base: string;
}

/** A compiled selector: its kind and source, and the matcher the hub uses. */
export interface Selector extends TopicMatcher {
  readonly kind: MatcherKind;
  readonly source: string;
}

/** The longest template or URL pattern selector accepted, in UTF-16 code units (longer: a MatcherError). */
export const MAX_SELECTOR_LENGTH = 2048;
/** The longest exact selector accepted: any topic a pattern could match can be named exactly. */
export const MAX_EXACT_SELECTOR_LENGTH = 8192;
/** A topic longer than this never matches a template or URL pattern (it is not parsed nor run); equality still holds. */
export const MAX_TOPIC_LENGTH = 8192;
/** Compiled selectors kept, shared by every subscriber (least recently used evicted). */
export const MAX_CACHED_SELECTORS = 2048;
/** Results kept per pattern selector, by topic (oldest evicted). */
export const MAX_CACHED_RESULTS = 256;
/** Results for longer topics are computed each time, not kept (the cache holds a reference to each topic). */
export const MAX_CACHED_TOPIC_LENGTH = 1024;

const KINDS: readonly MatcherKind[] = ['exact', 'template', 'urlpattern'];

/** C0, DEL and C1 control characters. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Draft-08: matcher values MUST be UTF-8 without C0, C1 or DEL (a lone surrogate is no UTF-8). */
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f]|\p{Cs}/u;

const WILDCARDS: Readonly<Record<MatcherKind, Selector>> = {
  exact: Object.freeze({ kind: 'exact', source: '*', key: '*', matches: () => true }),
  template: Object.freeze({ kind: 'template', source: '*', key: '*', matches: () => true }),
  urlpattern: Object.freeze({ kind: 'urlpattern', source: '*', key: '*', matches: () => true }),
};

/** Compiled selectors, and the errors of refused ones (so a refused selector sent again costs a lookup). */
const compiled = new BoundedCache<string, Selector | MatcherError>(MAX_CACHED_SELECTORS);

/**
 * Compiles a selector into the {@link Selector} the hub matches topics with. The same (kind,
 * source, and for URL patterns base) gives the same object. Throws {@link MatcherError}, whose
 * message is the text of a 400 answer, for a selector the hub cannot use.
 */
export function compileSelector(kind: MatcherKind, source: string, options: MatcherOptions): Selector {
  if (!KINDS.includes(kind)) throw new MatcherError(`Unknown matcher type ${quote(String(kind))}`);
  if (source === '*') return WILDCARDS[kind];
  const cacheKey = kind === 'urlpattern' ? `urlpattern\u0000${options.base}\u0000${source}` : `${kind}\u0000${source}`;
  const known = compiled.get(cacheKey);
  if (known instanceof MatcherError) throw known;
  if (known !== undefined) return known;
  let selector: Selector;
  try {
    selector = build(kind, source, options.base);
  } catch (error) {
    if (error instanceof MatcherError) compiled.set(cacheKey, error);
    throw error;
  }
  compiled.set(cacheKey, selector);
  return selector;
}

/** How many compiled selectors (and refusals) the shared cache holds. */
export function cachedSelectorCount(): number {
  return compiled.size;
}

/** Empties the shared cache (selectors already handed out keep working). */
export function clearSelectorCache(): void {
  compiled.clear();
}

function build(kind: MatcherKind, source: string, base: string): Selector {
  switch (kind) {
    case 'exact':
      checkLength(source, MAX_EXACT_SELECTOR_LENGTH);
      checkCharacters(source);
      return equality(kind, source);
    case 'template':
      checkLength(source, MAX_SELECTOR_LENGTH);
      return template(source);
    case 'urlpattern':
      checkLength(source, MAX_SELECTOR_LENGTH);
      checkCharacters(source);
      return urlPattern(source, base);
  }
}

function checkLength(source: string, max: number): void {
  if (source.length > max) {
    throw new MatcherError(`Selector too long: ${source.length} characters, at most ${max}: ${quote(source)}`);
  }
}

function checkCharacters(source: string): void {
  if (FORBIDDEN.test(source)) {
    throw new MatcherError(`Selector ${quote(source)} contains a control character or is not valid UTF-8`);
  }
}

function equality(kind: MatcherKind, source: string): Selector {
  return Object.freeze({ kind, source, key: keyOf(kind, source), matches: (topic: string) => topic === source });
}

/**
 * `${kind}:${source}`; but hubs join keys with line feeds (and NUL), so a source with a control
 * character (only a draft-07 template can have one) is keyed `${kind}~json:` and its JSON text,
 * which no control-free source's key can equal.
 */
function keyOf(kind: MatcherKind, source: string): string {
  return CONTROL.test(source) ? `${kind}~json:${JSON.stringify(source)}` : `${kind}:${source}`;
}

function template(source: string): Selector {
  // A string without an expression is a topic name: equality (the RFC would also let a non-ASCII
  // literal match its percent-encoded spelling; the hub looks such selectors up as exact names).
  if (!source.includes('{')) return equality('template', source);
  const parts = parseTemplate(source);
  if (parts === undefined) return equality('template', source);
  let compiled;
  try {
    compiled = compileTemplate(parts);
  } catch (error) {
    // A valid template whose expression RE2 will not build (repetitions nested too deep).
    throw new MatcherError(`URI template ${quote(source)} is too complex: ${error instanceof Error ? error.message : String(error)}`);
  }
  const { program, prefix } = compiled;
  if (program.size > MAX_PROGRAM_SIZE) {
    throw new MatcherError(
      `URI template ${quote(source)} is too complex: it compiles to ${program.size} instructions, at most ${MAX_PROGRAM_SIZE}`,
    );
  }
  const test = remembering((topic) => topic.startsWith(prefix) && program.test(topic.slice(prefix.length)));
  return Object.freeze({
    kind: 'template',
    source,
    key: keyOf('template', source),
    matches: (topic: string) => topic === source || (topic.length <= MAX_TOPIC_LENGTH && test(topic)),
  });
}

function urlPattern(source: string, base: string): Selector {
  let href: string;
  try {
    href = new URL(base).href;
  } catch {
    throw new TypeError(`The hub's base URL ${quote(base)} is not an absolute URL`);
  }
  const pattern = compileUrlPattern(source, base);
  const test = remembering((topic) => pattern.matches(topic));
  return Object.freeze({
    kind: 'urlpattern',
    source,
    // The base is part of what a pattern means (relative patterns and topics resolve against it):
    // the same pattern under two hub URLs is two families. An href has no space, so the last space
    // tells where the source ends.
    key: `urlpattern:${source} ${href}`,
    matches: (topic: string) => topic.length <= MAX_TOPIC_LENGTH && test(topic),
  });
}

/** `test`, with its results kept by topic (at most {@link MAX_CACHED_RESULTS}, short topics only). */
function remembering(test: (topic: string) => boolean): (topic: string) => boolean {
  const results = new BoundedCache<string, boolean>(MAX_CACHED_RESULTS, false);
  return (topic) => {
    const known = results.get(topic);
    if (known !== undefined) return known;
    const result = test(topic);
    if (topic.length <= MAX_CACHED_TOPIC_LENGTH) results.set(topic, result);
    return result;
  };
}
