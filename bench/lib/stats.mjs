// Figures of several runs of one variant, as one: what the sections that alternate their variants
// over rounds (run.mjs's paced rows, mercure.mjs) report per variant.

/** The median of `values` (undefined for none). */
export function median(values) {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Every figure of a variant's rounds, as the median across them, metric by metric.
 * @param {object[]} list  the rounds' figures
 * @param {{ same?: string[], of: string[] }} fields  `same`: copied from the first round (what every
 *   round shares: clients, events...); `of`: the figures to take the median of, each a key or a path
 *   such as 'latencyMs.p50', over the rounds where it is a finite number (a figure none has is left out)
 */
export function medians(list, { same = [], of }) {
  const out = {};
  for (const key of same) out[key] = list[0][key];
  for (const path of of) {
    const keys = path.split('.');
    const value = median(list.map((r) => keys.reduce((o, k) => o?.[k], r)).filter(Number.isFinite));
    if (value === undefined) continue;
    let into = out;
    for (const k of keys.slice(0, -1)) into = into[k] ??= {};
    into[keys.at(-1)] = value;
  }
  return out;
}
