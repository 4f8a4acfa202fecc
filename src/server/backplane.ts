/**
 * `--redis URL`: the Redis backplane, loaded only when asked for, so that a hub in memory needs
 * no ioredis.
 */
import type { Backplane, Logger } from '../index.js';

/** A start-up failure the user can fix (a missing package, say): the bin prints it and exits 1. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** The backplane for `createHub({ backplane })`. @throws StartupError when ioredis is missing */
export async function loadRedisBackplane(url: string, key: string, logger: Logger): Promise<Backplane> {
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
  return redis.redisBackplane({ url, key, logger });
}
