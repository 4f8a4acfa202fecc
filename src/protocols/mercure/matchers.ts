/**
 * Mercure topic selectors, compiled into the hub's {@link TopicMatcher}s.
 * PLACEHOLDER: exact and `*` only; the URI template and URL Pattern matchers are being written.
 */
import type { TopicMatcher } from '../../hub/interest.js';

/** The kinds of selector Mercure has: `exact` (draft-08 `match`), `template` (draft-07 `topic`), `urlpattern`. */
export type MatcherKind = 'exact' | 'template' | 'urlpattern';

/** A selector the hub cannot use: the message is the text of a 400 answer. */
export class MatcherError extends Error {
  override readonly name = 'MatcherError';
}

export interface MatcherOptions {
  /** The hub's own URL, against which relative URL patterns and topics are resolved. */
  base: string;
}

/** A compiled selector: its kind and source, and the matcher the hub uses. */
export interface Selector extends TopicMatcher {
  readonly kind: MatcherKind;
  readonly source: string;
}

export function compileSelector(kind: MatcherKind, source: string, _options: MatcherOptions): Selector {
  if (source === '*') return { kind, source, key: '*', matches: () => true };
  if (kind !== 'exact') throw new MatcherError(`${kind} selectors are not supported yet`);
  return { kind, source, key: `exact:${source}`, matches: (topic) => topic === source };
}
