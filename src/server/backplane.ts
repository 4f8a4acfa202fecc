/**
 * `--redis URL`: the Redis backplane and presence, loaded only when asked for, so that a hub in memory needs
 * no ioredis.
 */
import type { Presence } from '../backplanes/presence.js';
import type { Backplane, Logger } from '../index.js';

/** A start-up failure the user can fix (a missing package, say): the bin prints it and exits 1. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** What `--redis` gives the server: the log its instances share, and their presence. */
export interface RedisParts {
  backplane: Backplane;
  presence: Presence;
}

/** Where the instances meet on Redis. */
export interface RedisSettings {
  url: string;
  key: string;
  /** Milliseconds between presence heartbeats. */
  heartbeatMs: number;
}

/** The backplane for `createHub({ backplane })`, and presence on the same key. @throws StartupError when ioredis is missing */
export async function loadRedis({ url, key, heartbeatMs }: RedisSettings, logger: Logger): Promise<RedisParts> {
  let redis: typeof import('../backplanes/redis.js');
  try {
    redis = await import('../backplanes/redis.js');
  } catch (error) {
    // ioredis is an optional peer dependency: an install without it gets told what to add.
    if (/Cannot find (?:package|module) 'ioredis'/.test(String((error as Error)?.message))) {
      throw new StartupError('--redis needs the ioredis package: npm install ioredis');
    }
    throw error;
  }
  // The logger puts Redis trouble in the server's own JSON lines rather than on the console.
  return { backplane: redis.redisBackplane({ url, key, logger }), presence: redis.redisPresence({ url, key, heartbeatMs, logger }) };
}
