/**
 * RFC 6570 URI Templates as topic selectors (Mercure draft-07 `topic`, Mercure 0.x).
 *
 * Draft-07 says a string matches a selector that is `*`, that is equal to it, or that is a valid
 * URI Template of which the string is a possible expansion; a string that is not a valid template
 * (an unbalanced brace, a space, an operator RFC 6570 reserves) is still a selector, matched by
 * equality only. This module parses templates (levels 1 to 4) and turns a valid one into a regular
 * expression for the set of its expansions, which re2js runs in linear time (see `re2.ts`: a
 * template like `{a}{b}{c}…` is a chain of adjacent stars that a backtracking engine would explore
 * in polynomial time). Mercure 0.x's reference hub did the same through a Go library's `Regexp()`
 * (Go's regexp is RE2 too); the expressions here are written from RFC 6570 §3.2 and are tighter
 * where that library is loose: a named variable (`{?page}`, `{;x}`) must appear under its name.
 *
 * What an expansion can be, from RFC 6570 §3.2.1 and appendix A, for each variable of an
 * expression: undefined (skipped, with its separator; all undefined: the expression vanishes), a
 * string (encoded: unreserved characters kept, or for `+` and `#` reserved characters and
 * percent-encoded triplets too, everything else percent-encoded as UTF-8), a list or associative
 * array (members joined by `,`, or when exploded by the operator's separator, pairs as `key=value`).
 * The expressions accept exactly those strings, except in two places where they accept a little
 * more (a superset, never less): a prefix `:n` over {@link EXACT_PREFIX_LIMIT} is not counted, and
 * an exploded named variable (`{?list*}`) accepts any key (an associative array can have any keys).
 *
 * Topics are IRIs in Mercure: a non-ASCII character of the template's literal text matches itself
 * or its percent-encoded UTF-8 (the RFC's expansion encodes it); variable values are matched as the
 * RFC expands them (ASCII, non-ASCII percent-encoded), as Mercure 0.x did.
 */
import { compileLinear, escapeRe2, type LinearProgram } from './re2.js';

type Operator = '' | '+' | '#' | '.' | '/' | ';' | '?' | '&';

interface OperatorRules {
  /** Written before the first defined variable. */
  readonly first: string;
  /** Written between defined variables (and between exploded members). */
  readonly sep: string;
  /** `name=value` pairs (`;`, `?`, `&`). */
  readonly named: boolean;
  /** Written after the name when the value is empty. */
  readonly ifEmpty: string;
  /** Reserved characters and percent-encoded triplets pass unencoded (`+`, `#`). */
  readonly reserved: boolean;
}

/** RFC 6570 appendix A's table. */
const RULES: Readonly<Record<Operator, OperatorRules>> = {
  '': { first: '', sep: ',', named: false, ifEmpty: '', reserved: false },
  '+': { first: '', sep: ',', named: false, ifEmpty: '', reserved: true },
  '#': { first: '#', sep: ',', named: false, ifEmpty: '', reserved: true },
  '.': { first: '.', sep: '.', named: false, ifEmpty: '', reserved: false },
  '/': { first: '/', sep: '/', named: false, ifEmpty: '', reserved: false },
  ';': { first: ';', sep: ';', named: true, ifEmpty: '', reserved: false },
  '?': { first: '?', sep: '&', named: true, ifEmpty: '=', reserved: false },
  '&': { first: '&', sep: '&', named: true, ifEmpty: '=', reserved: false },
};

const OPERATORS = '+#./;?&';
/** Operators RFC 6570 reserves for future extensions: a template using one is not valid. */
const RESERVED_OPERATORS = '=,!@|';

export interface VarSpec {
  readonly name: string;
  /** The `:n` prefix modifier (1 to 9999). */
  readonly prefix: number | undefined;
  /** The `*` explode modifier. */
  readonly explode: boolean;
}

export interface Expression {
  readonly operator: Operator;
  readonly vars: readonly VarSpec[];
}

/** Literal text (copied by expansion) or an expression. */
export type TemplatePart = { readonly literal: string } | Expression;

/** A prefix longer than this is not counted (the expression would grow with it). */
export const EXACT_PREFIX_LIMIT = 8;
/** Up to this many variables after the first, variables of one form are counted (`F(?:,F){0,n}`); beyond, the general form. */
const SAME_FORM_LIMIT = 8;

const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

/** RFC 6570 §2.1 `literals`, but for `%` (pct-encoded, handled by the caller). */
function isLiteral(cp: number): boolean {
  if (cp < 0x80) {
    return (
      cp === 0x21 ||
      cp === 0x23 ||
      cp === 0x24 ||
      cp === 0x26 ||
      (cp >= 0x28 && cp <= 0x3b) ||
      cp === 0x3d ||
      (cp >= 0x3f && cp <= 0x5b) ||
      cp === 0x5d ||
      cp === 0x5f ||
      (cp >= 0x61 && cp <= 0x7a) ||
      cp === 0x7e
    );
  }
  // ucschar / iprivate (RFC 3987): the noncharacters U+xFFFE-xFFFF of each plane, controls, and
  // surrogates (a lone one: a pair arrives here as one code point) are not literals.
  if (cp >= 0xa0 && cp <= 0xd7ff) return true;
  if (cp >= 0xe000 && cp <= 0xfdcf) return true;
  if (cp >= 0xfdf0 && cp <= 0xffef) return true;
  if (cp >= 0x10000 && cp <= 0x10fffd) return (cp & 0xfffe) !== 0xfffe && !(cp >= 0xe0000 && cp < 0xe1000);
  return false;
}

/**
 * The varspec grammar of RFC 6570 §2.3-2.4: `varname [":" max-length / "*"]`, varname being
 * varchars (ALPHA, DIGIT, `_`, pct-encoded) with single dots between them. Unambiguous (each step
 * consumes a character that only one branch accepts), so RegExp runs it in linear time.
 */
const VARSPEC = /^((?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})(?:\.?(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2}))*)(?::([1-9][0-9]{0,3})|(\*))?$/;

function parseExpression(body: string): Expression | undefined {
  let operator: Operator = '';
  const head = body.charAt(0);
  if (head !== '' && OPERATORS.includes(head)) {
    operator = head as Operator;
    body = body.slice(1);
  } else if (head !== '' && RESERVED_OPERATORS.includes(head)) {
    return undefined;
  }
  const vars: VarSpec[] = [];
  for (const spec of body.split(',')) {
    const parsed = VARSPEC.exec(spec);
    if (parsed === null) return undefined;
    vars.push({ name: parsed[1]!, prefix: parsed[2] === undefined ? undefined : Number(parsed[2]), explode: parsed[3] !== undefined });
  }
  return { operator, vars };
}

/** `source` as a URI Template, or `undefined` when it is not a valid one (RFC 6570 §2). */
export function parseTemplate(source: string): TemplatePart[] | undefined {
  const parts: TemplatePart[] = [];
  let literal = '';
  let i = 0;
  while (i < source.length) {
    const c = source.charCodeAt(i);
    if (c === 0x7b /* { */) {
      const close = source.indexOf('}', i + 1);
      if (close < 0) return undefined;
      const expression = parseExpression(source.slice(i + 1, close));
      if (expression === undefined) return undefined;
      if (literal !== '') parts.push({ literal });
      literal = '';
      parts.push(expression);
      i = close + 1;
    } else if (c === 0x25 /* % */) {
      if (!isHex(source.charCodeAt(i + 1)) || !isHex(source.charCodeAt(i + 2))) return undefined;
      literal += source.slice(i, i + 3);
      i += 3;
    } else {
      const cp = source.codePointAt(i)!;
      if (!isLiteral(cp)) return undefined;
      const width = cp > 0xffff ? 2 : 1;
      literal += source.slice(i, i + width);
      i += width;
    }
  }
  if (literal !== '') parts.push({ literal });
  return parts;
}

const UNRESERVED = 'A-Za-z0-9\\-._~';
const RESERVED = ":/?#\\[\\]@!$&'()*+,;=";
const PCT = '%[0-9A-Fa-f]{2}';

/** One encoded character of a value: kept as is, or a percent-encoded triplet. */
function unit(rules: OperatorRules, extra = ''): string {
  return `(?:[${UNRESERVED}${rules.reserved ? RESERVED : extra}]|${PCT})`;
}

/** What one defined variable can expand to, name included for the named operators. */
function variableRe(rules: OperatorRules, spec: VarSpec): string {
  const value = `${unit(rules)}*`;
  if (spec.explode) {
    // Members (`red`) or pairs (`key=value`, `key` alone for `;` when the value is empty), joined by
    // the separator; for the named operators a list member comes as `name=member`, which the pair
    // form covers, keys being arbitrary.
    const item = rules.named && rules.ifEmpty === '=' ? `${value}=${value}` : `${value}(?:=${value})?`;
    return `${item}(?:${escapeRe2(rules.sep)}${item})*`;
  }
  let text: string;
  if (spec.prefix !== undefined && spec.prefix <= EXACT_PREFIX_LIMIT) {
    // At most n characters of the value, each kept or percent-encoded: one triplet, then the
    // triplets of its UTF-8 continuation bytes (%80 to %BF), if any.
    text = `(?:[${UNRESERVED}${rules.reserved ? RESERVED : ''}]|${PCT}(?:%[89ABab][0-9A-Fa-f]){0,3}){0,${spec.prefix}}`;
  } else if (spec.prefix !== undefined) {
    text = value;
  } else {
    // A string, or a list / associative array joined by `,`.
    text = `${unit(rules, ',')}*`;
  }
  if (!rules.named) return text;
  const name = escapeRe2(spec.name);
  return rules.ifEmpty === '=' ? `${name}=${text}` : `${name}(?:=${text})?`;
}

/** The expansions of one expression: an ordered subsequence of its variables, joined. */
function expressionRe(expression: Expression): string {
  const rules = RULES[expression.operator];
  const forms = expression.vars.map((spec) => variableRe(rules, spec));
  const first = escapeRe2(rules.first);
  const sep = escapeRe2(rules.sep);
  if (rules.first === rules.sep) {
    // `.`, `/`, `;`: every defined variable comes after the same character.
    return forms.map((form) => `(?:${sep}${form})?`).join('');
  }
  let body: string;
  const more = forms.length - 1;
  if (more <= SAME_FORM_LIMIT && forms.every((form) => form === forms[0])) {
    // `{a,b}`, `{+a,b}`: m of the k variables, m from 1 to k, all of the same form.
    body = more === 0 ? forms[0]! : `${forms[0]}(?:${sep}${forms[0]})${more === 1 ? '?' : `{0,${more}}`}`;
  } else {
    // A non-empty ordered subsequence of f1…fk joined by sep, in linear size: W(k) = fk, and
    // W(i) = (?:(?:fi sep)? W(i+1) | fi) (fi absent; fi alone; fi, sep, and a non-empty rest).
    body = forms[forms.length - 1]!;
    for (let i = forms.length - 2; i >= 0; i--) body = `(?:(?:${forms[i]}${sep})?${body}|${forms[i]})`;
  }
  return `(?:${first}${body})?`;
}

const encoder = new TextEncoder();

/** A hexadecimal digit of a percent-encoded triplet, in either case. */
const hexDigitRe = (digit: string): string => (digit >= 'A' ? `[${digit}${digit.toLowerCase()}]` : digit);

/** Literal text: ASCII as is; a non-ASCII character itself or its percent-encoded UTF-8. */
function literalRe(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; ) {
    if (text.charCodeAt(i) === 0x25) {
      out += text.slice(i, i + 3);
      i += 3;
      continue;
    }
    const cp = text.codePointAt(i)!;
    const char = String.fromCodePoint(cp);
    i += char.length;
    if (cp < 0x80) {
      out += escapeRe2(char);
      continue;
    }
    let encoded = '';
    for (const byte of encoder.encode(char)) {
      const hex = byte.toString(16).toUpperCase().padStart(2, '0');
      encoded += `%${hexDigitRe(hex[0]!)}${hexDigitRe(hex[1]!)}`;
    }
    out += `(?:${char}|${encoded})`;
  }
  return out;
}

/** A valid template, compiled: the ASCII text every expansion starts with, and a program for the rest. */
export interface CompiledTemplate {
  readonly prefix: string;
  readonly program: LinearProgram;
}

/**
 * Compiles parsed template parts (re2js errors propagate). The leading ASCII literal is left out of
 * the program: the caller checks it with `startsWith` and runs the program on the rest of the topic,
 * which keeps programs small (their size is the linear constant, and is capped).
 */
export function compileTemplate(parts: readonly TemplatePart[]): CompiledTemplate {
  const head = parts[0];
  const prefix = head !== undefined && 'literal' in head ? /^[\x00-\x7f]*/.exec(head.literal)![0] : '';
  let source = '';
  parts.forEach((part, i) => {
    if ('literal' in part) source += literalRe(i === 0 ? part.literal.slice(prefix.length) : part.literal);
    else source += expressionRe(part);
  });
  return { prefix, program: compileLinear(source) };
}
