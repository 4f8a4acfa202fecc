/**
 * Running a selector's regular expressions in linear time.
 *
 * JavaScript's RegExp backtracks: `^(?:\/(.*))a(.*)a(.*)a(.*)b$` (what the URL pattern
 * `/*a*a*a*b` compiles to) or a custom group like `((?:a+)+)` takes exponential or high-polynomial
 * time on a long topic that almost matches, and a subscriber chooses its selectors. So no
 * selector's expression is ever executed by RegExp: each is compiled with re2js, a port of RE2
 * (automata, and a backtracker bounded by a visited set), whose time is linear in the topic's
 * length. Constructs RE2 cannot run in linear time (lookaround, backreferences) are refused when
 * the selector is compiled.
 *
 * Linear is not enough on its own: the constant is the size of the compiled program (in the worst
 * case, when the automaton's state cache thrashes, every instruction is visited for every
 * character), and a few characters of pattern (`{1000}`) can make thousands of instructions. So
 * the program size is capped as well ({@link MAX_PROGRAM_SIZE}), topics are capped in length by the
 * caller, and long inputs avoid the lazy DFA's worst case ({@link DFA_INPUT_LIMIT}).
 */
import { RE2JS } from 're2js';

/**
 * The most instructions a selector's compiled programs may add up to. Selectors written by people
 * stay well under it (`https://example.com/books/:id`: 13; the subscriptions pattern
 * `/.well-known/mercure/subscriptions/Exact/:topic/:subscriber`: 50;
 * `https://example.com/users/{user}/posts/{post}{?page,sort,order}`: 87, its leading literal being
 * checked apart). Measured on this project's machine at the cap, the worst found (a pattern built to
 * defeat RE2's state cache, `/:x([ab]*a[ab]{190})c`, on an 8 KB topic built for it) takes about
 * 20 ms; the patterns of the backtracking attack (`/*a*a*a…b`, nested quantifiers, adjacent
 * template variables) a few milliseconds; an ordinary topic a few microseconds.
 */
export const MAX_PROGRAM_SIZE = 200;

/** A compiled expression and the number of instructions it holds. */
export interface LinearProgram {
  /** Whether the whole of `input` matches (anchored at both ends). */
  test(input: string): boolean;
  readonly size: number;
}

/**
 * Inputs up to this length run on re2js's lazy DFA (fastest, a fraction of a microsecond a
 * character once warm); longer ones on its NFA simulation (`matcher().matches()`). Both are linear,
 * but a pattern built to defeat the DFA's state cache (`[ab]*a[ab]{100}`, on a topic built for it)
 * makes the DFA build a new state at every character, several microseconds each, where the NFA
 * stays at a fraction of that: the DFA's worst case is kept to short inputs.
 */
export const DFA_INPUT_LIMIT = 256;

/**
 * Compiles `source`, in RE2 syntax, into a linear-time program. Throws re2js's own exception
 * (whose message says what construct was refused) when RE2 cannot compile it.
 */
export function compileLinear(source: string): LinearProgram {
  const program = RE2JS.compile(source);
  return {
    test: (input) => (input.length <= DFA_INPUT_LIMIT ? program.testExact(input) : program.matcher(input).matches()),
    size: program.programSize(),
  };
}

/**
 * The RE2 spelling of a regular expression written for JavaScript's RegExp with the `u` flag (as
 * the URL Pattern polyfill writes them). re2js's translator handles what the two syntaxes spell
 * differently (`[^]`, `[]`, `\u{…}`, `\uXXXX`, `(?<name>`); then every group is made
 * non-capturing, since only whether a topic matches is wanted, and captures cost instructions.
 */
export function fromJavaScript(source: string): string {
  return withoutCaptures(RE2JS.translateRegExp(source));
}

/** `source` (RE2 syntax) with `(…)` and `(?P<name>…)` turned into `(?:…)`. */
function withoutCaptures(source: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      out += source.slice(i, i + 2);
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // In RE2 a `]` just after `[` or `[^` is a member, not the end of the class.
      if (source[i + 1] === '^') out += source[++i];
      if (source[i + 1] === ']') out += source[++i];
      continue;
    }
    if (c === '(' && source[i + 1] !== '?') {
      out += '(?:';
      continue;
    }
    if (c === '(' && source.startsWith('(?P<', i)) {
      const close = source.indexOf('>', i);
      if (close > 0) {
        out += '(?:';
        i = close;
        continue;
      }
    }
    out += c;
  }
  return out;
}

/** `text` as an RE2 expression that matches exactly it (its metacharacters escaped). */
export function escapeRe2(text: string): string {
  return text.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}
