/**
 * `GET /metrics` in the Prometheus text exposition format (version 0.0.4): the hub's own counters,
 * read from `hub.stats()` at scrape time, plus what only the server sees (responses by status,
 * token expiries, refused connections, malformed requests).
 */
import type { HubStats } from '../../index.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Typed loosely: older hubs have no backplane fields, and in memory the lag reads 0. */
type Stats = HubStats & { backplaneLag?: number; backplaneConnected?: boolean };

/** The endpoints counted by name; anything else is `other`, so that labels stay few. */
export const ENDPOINTS = ['/events', '/publish', '/healthz', '/readyz', '/metrics', '/.well-known/mercure', '/ui'] as const;

export class ServerCounters {
  /** Subscribers disconnected because their token expired. */
  expired = 0;
  readonly #responses = new Map<string, number>();
  readonly #malformed = new Map<number, number>();

  /** A request refused before any endpoint saw it (Node's parser, or its head timeout), by status. */
  malformed(status: number): void {
    this.#malformed.set(status, (this.#malformed.get(status) ?? 0) + 1);
  }

  get malformedRequests(): ReadonlyMap<number, number> {
    return this.#malformed;
  }

  response(path: string, status: number): void {
    // Mercure's subscriptions API counts with its endpoint: one label, not one per subscription.
    // So does the dashboard (--ui), its files and stats stream: one label.
    const base = path.startsWith('/.well-known/mercure/') ? '/.well-known/mercure' : path.startsWith('/ui/') ? '/ui' : path;
    const endpoint = (ENDPOINTS as readonly string[]).includes(base) ? base : 'other';
    const key = `${endpoint} ${status}`;
    this.#responses.set(key, (this.#responses.get(key) ?? 0) + 1);
  }

  get responses(): ReadonlyMap<string, number> {
    return this.#responses;
  }
}

/** One metric and its samples (labels as written, `{a="b"}` or empty). */
export interface Family {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  samples: Array<[labels: string, value: number]>;
}

export function renderMetrics(stats: Stats, counters: ServerCounters): string {
  return renderFamilies(metricFamilies(stats, counters));
}

/** The figures of `/metrics`, before they are written out. */
export function metricFamilies(stats: Stats, counters: ServerCounters): Family[] {
  const single = (name: string, type: Family['type'], help: string, value: number): Family => ({ name, type, help, samples: [['', value]] });
  const families: Family[] = [
    single('serve_sse_connections', 'gauge', 'Open event streams subscribed to the hub.', stats.connections),
    single('serve_sse_topics', 'gauge', 'Topics with at least one subscriber.', stats.topics),
    single('serve_sse_history_events', 'gauge', 'Events held for replay.', stats.history),
    single('serve_sse_published_total', 'counter', 'Events published.', stats.published),
    single('serve_sse_delivered_total', 'counter', 'Events written to subscribers, replays included.', stats.delivered),
    single('serve_sse_dropped_total', 'counter', 'Events skipped for slow subscribers.', stats.dropped),
    single('serve_sse_evicted_total', 'counter', 'Slow subscribers disconnected.', stats.evicted),
    single('serve_sse_replayed_total', 'counter', 'Events written as replay after a Last-Event-ID.', stats.replayed),
    single('serve_sse_resets_total', 'counter', 'Reset events sent for ids the hub could not replay from.', stats.resets),
    single('serve_sse_backplane_lag_seconds', 'gauge', 'How far behind the shared log this instance is (0 in memory).', (stats.backplaneLag ?? 0) / 1000),
    single('serve_sse_backplane_connected', 'gauge', 'Whether the backplane accepts publications (1) or not (0).', stats.backplaneConnected === false ? 0 : 1),
    single('serve_sse_token_expired_total', 'counter', 'Subscribers disconnected when their token expired.', counters.expired),
    {
      name: 'serve_sse_http_responses_total',
      type: 'counter',
      help: 'HTTP responses by endpoint and status code (event streams counted when they end).',
      samples: [...counters.responses].map(([key, value]) => {
        const [endpoint, code] = key.split(' ');
        return [`{endpoint="${endpoint}",code="${code}"}`, value];
      }),
    },
    {
      name: 'serve_sse_malformed_requests_total',
      type: 'counter',
      help: 'Requests refused before reaching an endpoint (malformed, head too large or too slow), by the status they were answered with (counted also when no answer could be written).',
      samples: [...counters.malformedRequests].map(([code, value]) => [`{code="${code}"}`, value]),
    },
  ];
  return families;
}

/** The text format: each family's HELP and TYPE, then its samples. */
export function renderFamilies(families: readonly Family[]): string {
  let text = '';
  for (const family of families) {
    text += `# HELP ${family.name} ${family.help}\n# TYPE ${family.name} ${family.type}\n`;
    for (const [labels, value] of family.samples) text += `${family.name}${labels} ${formatValue(value)}\n`;
  }
  return text;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/**
 * Several processes' figures as one exposition: each family once, with every process's samples,
 * each labelled `name="value"` (`worker="2"`), so that a scraper can sum them (or tell them apart).
 */
export function mergeFamilies(reports: ReadonlyArray<{ label: [name: string, value: string]; families: readonly Family[] }>): Family[] {
  const merged = new Map<string, Family>();
  for (const { label, families } of reports) {
    const [name, value] = label;
    const pair = `${name}="${value.replace(/[\\"\n]/g, (char) => (char === '\n' ? '\\n' : `\\${char}`))}"`;
    for (const family of families) {
      let target = merged.get(family.name);
      if (target === undefined) merged.set(family.name, (target = { ...family, samples: [] }));
      for (const [labels, sample] of family.samples) target.samples.push([labels === '' ? `{${pair}}` : `{${pair},${labels.slice(1)}`, sample]);
    }
  }
  return [...merged.values()];
}
