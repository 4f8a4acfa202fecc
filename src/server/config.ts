/**
 * What the hub server is configured with, and the defaults. The bin fills it from flags and the
 * environment (src/cli/hub-flags.ts); an app that runs the server in-process passes it directly.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface HubServerConfig {
  port: number;
  /** Undefined: every interface. */
  host: string | undefined;
  /** Undefined: the hub keeps its log in memory (one instance). */
  redis: string | undefined;
  /** The Redis stream that instances of one hub share. */
  redisKey: string;
  /** Undefined: publishing is refused. */
  publisherKey: string | undefined;
  /** Undefined: subscribing is open to anyone. */
  subscriberKey: string | undefined;
  /** `"*"`: any origin, without credentials. A list: those origins, with credentials. */
  cors: '*' | string[] | undefined;
  /** Largest publish body, in bytes. */
  maxBody: number;
  /** Open `/events` requests per client address; 0: no cap. */
  maxConnectionsPerIp: number;
  /** Read the client address from the last `X-Forwarded-For` entry (set it behind one proxy). */
  trustProxy: boolean;
  /** Events kept for replay. */
  history: number;
  /** Milliseconds between keep-alive comments on idle streams. */
  keepAlive: number;
  /** Milliseconds a subscriber may stay over 64 KiB unsent before it is disconnected as slow. */
  slowClientTimeout: number;
  /** Unsent bytes at which a subscriber is disconnected as slow at once. */
  maxBuffered: number;
  /** Reconnection delay (ms) sent to every client at shutdown. */
  shutdownRetry: number;
  /** Longest a shutdown may take (ms) before the remaining connections are cut. */
  shutdownTimeout: number;
  /**
   * Longest a client may take (ms) to send a request head, and a `POST /publish` its whole body
   * after the head; slower ones get 408 and their connection is closed.
   */
  bodyTimeout: number;
  logLevel: LogLevel;
}

export const DEFAULTS: HubServerConfig = {
  port: 8080,
  host: undefined,
  redis: undefined,
  redisKey: 'serve-sse',
  publisherKey: undefined,
  subscriberKey: undefined,
  cors: undefined,
  maxBody: 1024 * 1024,
  maxConnectionsPerIp: 100,
  trustProxy: false,
  history: 1000,
  keepAlive: 15_000,
  slowClientTimeout: 10_000,
  maxBuffered: 2 * 1024 * 1024,
  shutdownRetry: 2000,
  shutdownTimeout: 10_000,
  bodyTimeout: 10_000,
  logLevel: 'info',
};
