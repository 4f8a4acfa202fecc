/**
 * How serve-sse's Redis pieces (the backplane, presence) reach Redis: a url, or an ioredis client
 * whose settings they copy for connections of their own, named without the password in every
 * log line and error.
 */
import { Redis, type RedisOptions } from 'ioredis';

export interface RedisTarget {
  /** Where Redis is, for messages: `host:port`, or the url without its password. */
  readonly where: string;
  /** A new connection with these settings on top. */
  connect(overrides: RedisOptions): Redis;
}

/**
 * The target of `{ url }` or `{ client }`.
 * @param error makes the TypeError for an invalid option, naming the component's own option
 */
export function redisTarget(url: unknown, client: unknown, error: (name: string, expected: string, value: unknown) => TypeError): RedisTarget {
  if (client !== undefined) {
    if (client === null || typeof client !== 'object' || typeof (client as Redis).duplicate !== 'function') throw error('client', 'an ioredis client', client);
    const { host = 'localhost', port = 6379 } = (client as Redis).options;
    return { where: `${host}:${port}`, connect: (overrides) => (client as Redis).duplicate(overrides) as Redis };
  }
  if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) throw error('url', 'a redis:// or rediss:// URL', url);
  return { where: withoutPassword(url), connect: (overrides) => new Redis(url, overrides) };
}

/** The url as it may appear in logs and errors. */
export function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    return parsed.href.replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//');
  }
}

/** A TypeError for `component`'s option `name`; a url is never echoed (it may hold a password). */
export function redisOptionError(component: string, name: string, expected: string, value: unknown): TypeError {
  const shown = name === 'url' || typeof value !== 'string' ? typeof value : JSON.stringify(value);
  return new TypeError(`serve-sse: ${component} option ${name} must be ${expected}; got ${shown}`);
}
