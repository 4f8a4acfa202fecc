/** The error a selector the hub cannot use raises, and how its text quotes the selector. */

/** A selector the hub cannot use: the message is the text of a 400 answer. */
export class MatcherError extends Error {
  override readonly name = 'MatcherError';
}

/** How many characters of an offending selector an error message quotes. */
export const QUOTED_SELECTOR_LENGTH = 64;

/**
 * `text` as a JSON string literal, cut to {@link QUOTED_SELECTOR_LENGTH} characters (with `…` when
 * cut, never in the middle of a surrogate pair): control characters come out escaped, so the
 * quote is safe in a one-line `text/plain` answer or a log line.
 */
export function quote(text: string): string {
  if (text.length <= QUOTED_SELECTOR_LENGTH) return JSON.stringify(text);
  let end = QUOTED_SELECTOR_LENGTH;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return JSON.stringify(`${text.slice(0, end)}…`);
}

/** `reason` cut to a length fit for one line of an answer. */
export function shorten(reason: string, max = 160): string {
  return reason.length <= max ? reason : `${reason.slice(0, max - 1)}…`;
}
