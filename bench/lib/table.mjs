// Renders the results as one markdown table: a row per (scenario, metric), a column per
// variant, then ratio columns comparing variants measured in the same run.

const int = (v) => Math.round(v).toLocaleString('en-US');
const fixed = (digits) => (v) => v.toFixed(digits);

// better: which way is good, shown next to the metric's name. ratio: false where a ratio
// would mislead (percentages, or figures that can be ~0 or negative such as heap growth).
export const METRICS = {
  fanout: [
    { name: 'deliveries/s', better: '↑', get: (r) => r.deliveriesPerSec, format: int },
    { name: 'server CPU µs/delivery', better: '↓', get: (r) => r.cpuUsPerDelivery, format: fixed(3) },
    { name: 'p50 latency ms', better: '↓', get: (r) => r.latencyMs?.p50, format: fixed(1) },
    { name: 'p99 latency ms', better: '↓', get: (r) => r.latencyMs?.p99, format: fixed(1) },
    { name: 'delivered %', better: '↑', get: (r) => r.deliveredPct, format: fixed(1), ratio: false },
  ],
  idle: [
    { name: 'RSS KiB/conn', better: '↓', get: (r) => r.rssKiBPerConn, format: fixed(2) },
    { name: 'heap+external KiB/conn', better: '↓', get: (r) => r.heapKiBPerConn, format: fixed(2) },
  ],
  churn: [
    { name: 'connects/s', better: '↑', get: (r) => r.connectsPerSec, format: int },
    { name: 'server CPU µs/cycle', better: '↓', get: (r) => r.cpuUsPerCycle, format: fixed(1) },
    { name: 'heap growth MiB', better: '↓', get: (r) => r.heapGrowthMiB, format: fixed(2), ratio: false },
  ],
};
// The Mercure section (bench/mercure.mjs): the fan-out's figures, and the server's user-space share
// of its CPU (the JavaScript: protocol, matching, fan-out), apart from the kernel's (mostly the
// loopback writes, which cost the same whoever makes them).
METRICS.mercure = [
  ...METRICS.fanout.slice(0, 2),
  { name: 'of which user µs/delivery', better: '↓', get: (r) => r.userUsPerDelivery, format: fixed(3) },
  ...METRICS.fanout.slice(2),
  // Why a flat-out figure is what it is: events published close together share a socket write, and
  // the CPU per delivery is about the cost of a write ÷ the events it carried.
  { name: 'events per socket write', better: '', get: (r) => r.deliveriesPerWrite, format: fixed(2) },
  { name: 'server CPU µs/socket write', better: '↓', get: (r) => r.cpuUsPerWrite, format: fixed(2) },
];
// The replay storm (bench/README.md). Growth and the bound are not ratioed: the growth can be ~0,
// and the bound is the design's, not a measurement.
METRICS.replay = [
  { name: 'caught up s', better: '↓', get: (r) => r.caughtUpSeconds, format: fixed(2) },
  { name: 'connects/s', better: '↑', get: (r) => r.connectsPerSec, format: int },
  { name: 'server CPU µs/replayed event', better: '↓', get: (r) => r.cpuUsPerReplayed, format: fixed(3) },
  { name: 'peak RSS MiB', better: '↓', get: (r) => r.peakRssMiB, format: int },
  { name: 'RSS growth MiB', better: '↓', get: (r) => r.rssGrowthMiB, format: int, ratio: false },
  { name: 'peak unsent KiB/client', better: '↓', get: (r) => r.peakUnsentKiB, format: int },
  { name: 'design bound KiB/client', better: '', get: (r) => r.unsentBoundKiB, format: int, ratio: false },
  { name: 'delivered %', better: '↑', get: (r) => r.deliveredPct, format: fixed(1), ratio: false },
];
METRICS['replay-stall'] = [
  ...METRICS.replay,
  { name: 'non-readers evicted', better: '', get: (r) => r.evicted, format: int, ratio: false },
  { name: 'evicted by s', better: '↓', get: (r) => r.evictedAfterS, format: fixed(1), ratio: false },
];
// The reconnect storm (bench/reconnect.mjs, its own table). Redis: instances B and C together.
METRICS.reconnect = [
  { name: 'caught up s', better: '↓', get: (r) => r.caughtUpSeconds, format: fixed(2) },
  { name: 'connects/s', better: '↑', get: (r) => r.connectsPerSec, format: int },
  { name: 'server CPU µs/replayed event', better: '↓', get: (r) => r.cpuUsPerReplayed, format: fixed(3) },
  { name: 'peak RSS MiB', better: '↓', get: (r) => r.peakRssMiB, format: int },
  { name: 'RSS growth MiB', better: '↓', get: (r) => r.rssGrowthMiB, format: int, ratio: false },
  { name: 'caught up %', better: '↑', get: (r) => r.deliveredPct, format: fixed(1), ratio: false },
  { name: 'live %', better: '↑', get: (r) => r.livePct, format: fixed(1), ratio: false },
  { name: 'next event to all ms', better: '↓', get: (r) => r.liveMs, format: fixed(0) },
];

/** Ratio columns: every variant against raw, and every other variant against better-sse. */
function ratioPairs(variants) {
  const pairs = [];
  for (const reference of ['raw', 'better-sse']) {
    if (!variants.includes(reference)) continue;
    for (const v of variants) {
      if (v === reference || v === 'raw') continue;
      pairs.push([v, reference]);
    }
  }
  return pairs;
}

function ratio(a, b) {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '—';
  return `${(a / b).toFixed(2)}×`;
}

/**
 * @param {Array<{ scenario: string, kind: string, variant: string, error?: string }>} results
 * @param {string[]} variants  column order
 * @param {Array<[string, string]>} [pairs]  ratio columns, [a, b] for a ÷ b; by default every
 *   variant against raw and better-sse
 */
export function renderTable(results, variants, pairs = ratioPairs(variants)) {
  const header = ['scenario', 'metric', ...variants, ...pairs.map(([a, b]) => `${a} ÷ ${b}`)];
  const lines = [row(header), row(header.map(() => '---'))];
  const scenarios = [...new Set(results.map((r) => r.scenario))];
  for (const scenario of scenarios) {
    const byVariant = Object.fromEntries(
      results.filter((r) => r.scenario === scenario).map((r) => [r.variant, r]),
    );
    const kind = results.find((r) => r.scenario === scenario).kind;
    for (const metric of METRICS[kind]) {
      const value = (v) => {
        const r = byVariant[v];
        const x = r && !r.error && !r.skipped ? metric.get(r) : undefined;
        return Number.isFinite(x) ? x : undefined;
      };
      const cells = variants.map((v) => {
        const x = value(v);
        if (x !== undefined) return metric.format(x);
        return byVariant[v]?.error ? 'error' : byVariant[v]?.skipped ? 'skipped' : '—';
      });
      const ratios = pairs.map(([a, b]) => (metric.ratio === false ? '' : ratio(value(a), value(b))));
      lines.push(row([scenario, `${metric.name}${metric.better ? ` ${metric.better}` : ''}`, ...cells, ...ratios]));
    }
  }
  return lines.join('\n');
}

function row(cells) {
  return `| ${cells.join(' | ')} |`;
}
