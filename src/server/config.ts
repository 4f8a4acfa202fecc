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
  /**
   * Milliseconds between an instance's presence heartbeats on Redis: an instance that stops
   * (killed, frozen, cut off) leaves the other instances' subscription lists within 3 of them.
   */
  presenceHeartbeat: number;
  /** Undefined (and no `publisherJwksUrl`): publishing is refused. A secret, or a PEM public key or certificate. */
  publisherKey: string | undefined;
  /** The algorithm of publishers' tokens; undefined: HS256 for a secret, RS256 for a PEM key. */
  publisherAlg: string | undefined;
  /** Publishers' keys from a JWK Set instead of `publisherKey`. */
  publisherJwksUrl: string | undefined;
  /** Undefined (and no `subscriberJwksUrl`): subscribing is open to anyone, for public updates. */
  subscriberKey: string | undefined;
  subscriberAlg: string | undefined;
  subscriberJwksUrl: string | undefined;
  /** With a subscriber key, subscribers without a token still get public updates (Mercure). */
  anonymous: boolean;
  /** Draft-08 (`at+jwt`) Mercure tokens must have been issued by this `iss`. */
  jwtIssuer: string | undefined;
  /** Draft-08 (`at+jwt`) Mercure tokens must name this audience in `aud`. */
  jwtAudience: string | undefined;
  /** Origins allowed to publish to Mercure with a cookie; undefined: the hub's own. */
  publishOrigins: string[] | undefined;
  /** Mercure's active subscriptions (events and API). */
  subscriptions: boolean;
  /** Mercure: milliseconds after which a subscriber's stream ends whatever its token says; undefined: at the token's exp only. */
  maxLifetime: number | undefined;
  /** The hub's public URL: what relative Mercure topics and patterns resolve against. */
  publicUrl: string | undefined;
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
  /**
   * The dashboard at `GET /ui` (figures over `GET /ui/stats`, and a console). Off by default: it
   * shows every topic's figures, so keep it off the public route (with a subscriber key, its
   * figures need a subscriber token for every topic).
   */
  ui: boolean;
  /**
   * Processes that serve (`serve-sse hub --workers N`): with more than 1, a primary forks them
   * (node:cluster), they share the port, and they share one log: Redis's with `redis`, else the
   * primary's. 1: this process serves, alone.
   */
  workers: number;
  logLevel: LogLevel;
}

export const DEFAULTS: HubServerConfig = {
  port: 8080,
  host: undefined,
  redis: undefined,
  redisKey: 'serve-sse',
  presenceHeartbeat: 5000,
  publisherKey: undefined,
  publisherAlg: undefined,
  publisherJwksUrl: undefined,
  subscriberKey: undefined,
  subscriberAlg: undefined,
  subscriberJwksUrl: undefined,
  anonymous: false,
  jwtIssuer: undefined,
  jwtAudience: undefined,
  publishOrigins: undefined,
  subscriptions: true,
  maxLifetime: undefined,
  publicUrl: undefined,
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
  ui: false,
  workers: 1,
  logLevel: 'info',
};
