/**
 * The hub's default topics, read from the query without URLSearchParams when there is nothing to
 * decode: checked against URLSearchParams itself, the oracle, on chosen and on random queries.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IncomingMessage } from 'node:http';
import { queryTopics } from '../../src/hub/query-topics.js';

const topicsOf = (url: string | undefined): string[] => queryTopics({ url } as IncomingMessage);
const oracle = (url: string): string[] => {
  const start = url.indexOf('?');
  return start === -1 ? [] : new URLSearchParams(url.slice(start + 1)).getAll('topic').filter((t) => t !== '');
};

describe('queryTopics', () => {
  test('reads the topic parameters, in order, as URLSearchParams does', () => {
    const urls = [
      '/events',
      '/events?',
      '/events?topic=a',
      '/events?topic=a&topic=b&other=1&topic=c',
      '/events?topic=&topic=a&topic',
      '/events?topics=a&xtopic=b&topic=c',
      '/events?topic=a=b&&topic=c&',
      '/events??topic=a',
      '/events?topic=a%2Fb&topic=c+d',
      '/events?t%6Fpic=a&topic=%zz',
      '/events?topic=caf%C3%A9&topic=%E2%82',
      '/events?topic=a#frag&topic=b',
      '/events?topic=/books/1?x=y',
    ];
    for (const url of urls) assert.deepEqual(topicsOf(url), oracle(url), url);
    assert.deepEqual(topicsOf(undefined), []);
    assert.deepEqual(topicsOf('/events?topic=a&topic=b'), ['a', 'b']);
  });

  test('agrees with URLSearchParams on 20,000 random queries', () => {
    const alphabet = ['topic', 'topic=', '=', '&', '?', '%', '%2', '%41', '+', 'a', 'b', '/', '#', ' ', 'é', 'x=', 'top'];
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 20_000; i++) {
      let query = '';
      for (let k = random(12); k > 0; k--) query += alphabet[random(alphabet.length)];
      const url = `/events?${query}`;
      assert.deepEqual(topicsOf(url), oracle(url), url);
    }
  });
});
