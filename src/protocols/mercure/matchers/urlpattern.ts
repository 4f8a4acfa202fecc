/**
 * WHATWG URL Patterns as topic matchers (Mercure draft-08 `match_urlpattern` / `matchURLPattern`).
 *
 * The semantics are the URL Pattern standard's, taken from the urlpattern-polyfill package rather
 * than written again: it parses the pattern, resolves a relative one against the hub's URL,
 * canonicalizes each component and writes each component's regular expression. What it must not do
 * is run them: the standard compiles to JavaScript RegExp, which backtracks, so `/*a*a*a*a*b`
 * (`^(?:\/(.*))a(.*)a(.*)a(.*)a(.*)b$`) or a custom group `(?:a+)+` takes exponential or
 * high-polynomial time on a long topic that almost matches, and draft-08 requires a linear-time
 * engine or a cost limit. So each component's expression is recorded as the polyfill builds it and
 * compiled with re2js instead (see `re2.ts`); the polyfill's own `test()` and `exec()` are never
 * called.
 *
 * Recording: the polyfill builds a component's expression with `new RegExp(source, flags)`, one per
 * component, in the standard's component order (protocol, username, password, hostname, port,
 * pathname, search, hash), at the end of its constructor (an absolute string pattern compiles its
 * protocol once more beforehand, to decide whether the scheme is special). During that synchronous
 * constructor, and only then, `globalThis.RegExp` is a Proxy that notes each call's source and
 * flags and builds the real RegExp; the `finally` puts the original back before anything else can
 * run. The last eight recorded are the components'. Constructing per component instead
 * (`new URLPattern({ pathname })`) would lose the protocol, on which the pathname's encoding depends
 * (`foo://h/:x` has a `[^]+?` segment, a special scheme `[^\/]+?`).
 *
 * Matching a topic: it is parsed as the polyfill's `test(topic, base)` would (`new URL(topic,
 * base)`, the protocol without `:`, search without `?`, hash without `#`), and each component is
 * tested against its program. Components that match anything (`*`) are skipped, and fixed text
 * (`https`, `example.com`) is compared as a string.
 */
import { URLPattern } from 'urlpattern-polyfill/urlpattern';
import { MatcherError, quote, shorten } from './errors.js';
import { compileLinear, fromJavaScript, MAX_PROGRAM_SIZE } from './re2.js';

/** The components of a URL, in the URL Pattern standard's order. */
export const COMPONENTS = ['protocol', 'username', 'password', 'hostname', 'port', 'pathname', 'search', 'hash'] as const;

interface Recorded {
  readonly source: string;
  readonly flags: string;
}

/** Runs `build` with `globalThis.RegExp` replaced by a recording proxy; returns what it recorded. */
function recordingRegExps(build: () => unknown): Recorded[] {
  const recorded: Recorded[] = [];
  const original = globalThis.RegExp;
  const note = (args: readonly unknown[]): void => {
    const [pattern, flags] = args;
    const isRegExp = pattern instanceof original;
    recorded.push({
      source: isRegExp ? pattern.source : String(pattern),
      flags: flags === undefined ? (isRegExp ? pattern.flags : '') : String(flags),
    });
  };
  const spy = new Proxy(original, {
    construct(target, args, newTarget) {
      note(args);
      return Reflect.construct(target, args, newTarget) as object;
    },
    apply(target, self, args) {
      note(args);
      return Reflect.apply(target, self, args) as unknown;
    },
  });
  globalThis.RegExp = spy;
  try {
    build();
  } finally {
    globalThis.RegExp = original;
  }
  return recorded;
}

/** What the polyfill writes for a component that matches everything. */
const WILDCARD = '^(.*)$';
/**
 * A component expression that is fixed text: `^` and `$` around characters and escaped
 * metacharacters only (the polyfill escapes `.+*?^${}()[]|/\`). Unambiguous, so linear in RegExp.
 */
const FIXED_TEXT = /^\^((?:[^\\^$.|?*+()[\]{}]|\\[\\^$.|?*+()[\]{}/])*)\$$/;

type ComponentTest = (value: string) => boolean;

interface ComponentCheck {
  readonly index: number;
  readonly test: ComponentTest;
}

/** A compiled URL pattern: whether a topic matches, and the instructions its programs hold. */
export interface CompiledUrlPattern {
  matches(topic: string): boolean;
  readonly size: number;
}

function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return shorten(message.replace(/^Failed to construct 'URLPattern': /, '').replace(/^error parsing regexp: /, ''));
}

/**
 * Compiles a URL pattern (absolute, or relative to `base`). Throws {@link MatcherError} when the
 * polyfill refuses the pattern, when re2js cannot compile one of its expressions (lookaround,
 * backreferences), or when its programs exceed {@link MAX_PROGRAM_SIZE}.
 */
export function compileUrlPattern(source: string, base: string): CompiledUrlPattern {
  let recorded: Recorded[];
  try {
    recorded = recordingRegExps(() => new URLPattern(source, base));
  } catch (error) {
    throw new MatcherError(`Invalid URL pattern ${quote(source)}: ${reasonOf(error)}`);
  }
  if (recorded.length < COMPONENTS.length) {
    throw new Error(`urlpattern-polyfill built ${recorded.length} regular expressions for ${COMPONENTS.length} components`);
  }
  const expressions = recorded.slice(-COMPONENTS.length);
  const fixed: ComponentCheck[] = [];
  const programs: ComponentCheck[] = [];
  let size = 0;
  expressions.forEach(({ source: expression, flags }, index) => {
    // `u` only: the hub never sets `ignoreCase` (which would add `i`).
    if (flags !== 'u') throw new Error(`urlpattern-polyfill built an expression with flags "${flags}"`);
    if (expression === WILDCARD) return;
    const text = FIXED_TEXT.exec(expression);
    if (text !== null) {
      const literal = text[1]!.replace(/\\(.)/g, '$1');
      fixed.push({ index, test: (value) => value === literal });
      return;
    }
    let program;
    try {
      program = compileLinear(fromJavaScript(expression));
    } catch (error) {
      throw new MatcherError(
        `URL pattern ${quote(source)} uses a regular expression the hub cannot run in linear time ` +
          `(lookahead, lookbehind and backreferences are not supported): ${reasonOf(error)}`,
      );
    }
    size += program.size;
    programs.push({ index, test: (value) => program.test(value) });
  });
  if (size > MAX_PROGRAM_SIZE) {
    throw new MatcherError(
      `URL pattern ${quote(source)} is too complex: it compiles to ${size} instructions, at most ${MAX_PROGRAM_SIZE}`,
    );
  }
  // Fixed text first: a string comparison rejects most topics before any program runs.
  const checks = [...fixed, ...programs];
  return {
    size,
    matches(topic) {
      const values = componentsOf(topic, base);
      if (values === undefined) return false;
      for (const { index, test } of checks) if (!test(values[index]!)) return false;
      return true;
    },
  };
}

// The last topic parsed, and against which base: the hub asks every matcher about one topic in a
// row, so one parse serves all of a topic's URL pattern matchers.
let lastTopic: string | undefined;
let lastBase: string | undefined;
let lastValues: readonly string[] | undefined;

/** A topic's URL components (as the polyfill's `test(topic, base)` reads them), or `undefined` if it is no URL. */
export function componentsOf(topic: string, base: string): readonly string[] | undefined {
  if (topic === lastTopic && base === lastBase) return lastValues;
  let values: readonly string[] | undefined;
  try {
    const url = new URL(topic, base);
    values = [
      url.protocol.slice(0, -1),
      url.username,
      url.password,
      url.hostname,
      url.port,
      url.pathname,
      url.search.slice(1),
      url.hash.slice(1),
    ];
  } catch {
    values = undefined;
  }
  lastTopic = topic;
  lastBase = base;
  lastValues = values;
  return values;
}
