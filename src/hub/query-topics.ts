import type { SseRequest } from '../stream.js';

/**
 * The hub handler's default topics: the request's `topic` query parameters, empty ones left out,
 * decoded by the form rules (as `URLSearchParams` reads them).
 */
export function queryTopics(request: SseRequest): string[] {
  const url = request.url ?? '';
  const start = url.indexOf('?');
  if (start === -1) return [];
  const query = url.slice(start + 1);
  // Anything to decode (or a second '?', which URLSearchParams skips): the form rules in full.
  if (ENCODED.test(query)) return new URLSearchParams(query).getAll('topic').filter((t) => t !== '');
  // The common query, `topic=a&topic=b` with nothing to decode, read as URLSearchParams would
  // read it at a fraction of the cost, for every connection of a reconnection wave.
  const topics: string[] = [];
  for (const pair of query.split('&')) {
    if (pair.length > TOPIC_KEY.length && pair.startsWith(TOPIC_KEY)) topics.push(pair.slice(TOPIC_KEY.length));
  }
  return topics;
}

const TOPIC_KEY = 'topic=';
const ENCODED = /[%+]|^\?/;
