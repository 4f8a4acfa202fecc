/**
 * The ids of a backplane's log: `<number>-<number>`, increasing in log order (`<epoch>-<seq>` in
 * memory, the stream id on Redis). One definition, for the backplanes that read them and for the
 * history that finds a client's id among them.
 */

const LOG_ID = /^(\d{1,20})-(\d{1,20})$/;

export function isLogId(id: string): boolean {
  return LOG_ID.test(id);
}

/** Orders two log ids. Each part may pass 2^53, so parts are compared as digit strings. */
export function compareLogIds(a: string, b: string): number {
  const [, aHigh = '', aLow = ''] = LOG_ID.exec(a) ?? [];
  const [, bHigh = '', bLow = ''] = LOG_ID.exec(b) ?? [];
  return compareDigits(aHigh, bHigh) || compareDigits(aLow, bLow);
}

function compareDigits(a: string, b: string): number {
  // Logs write no leading zeros: the longer number is the larger.
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A key that orders like the id under plain string comparison (both parts zero-padded): for
 * ordering many ids against a stream of others without parsing each one again.
 */
export function logIdKey(id: string): string {
  const [, high = '', low = ''] = LOG_ID.exec(id) ?? [];
  return `${high.padStart(20, '0')}-${low.padStart(20, '0')}`;
}
