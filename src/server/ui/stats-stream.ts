/**
 * `GET /ui/stats`: the dashboard's figures as an event stream, one `stats` event a second (and one
 * at once), from `hub.stats()` and the server's own counters. One timer serves every open stream.
 * The streams are not hub subscriptions, so a dashboard does not count among the connections it
 * shows. With a subscriber key they need a subscriber token for every topic (`sse.subscribe`
 * `["*"]`): the figures are about every topic, so only a token that may see them all may see them.
 */
import type { Logger as PinoLogger } from 'pino';
import { defaultOnConnect, serveSse, type ConnectResult, type Hub, type HubStats, type SseHandler, type SseRequest, type SseStream } from '../../index.js';
import type { ServerCounters } from '../http/metrics.js';
import { bearerToken, cookieToken, type TokenVerifier } from '../native/auth.js';
import { WILDCARD } from '../native/topics.js';

export interface StatsStreamOptions {
  hub: Hub;
  counters: ServerCounters;
  /** The subscribers' verifier; undefined (no subscriber key): the stream is open. */
  verifier: TokenVerifier | undefined;
  /** Milliseconds between two `stats` events. */
  intervalMs: number;
  slowClientTimeout: number;
  maxBuffered: number;
  log: PinoLogger;
}

export interface StatsStream {
  handler: SseHandler;
  /** Ends every stream with a `retry` hint (at shutdown) and stops the timer. */
  stop(retry: number): void;
}

/** The `data` of a `stats` event (JSON): the hub's own figures and the server's counters. */
export interface StatsSnapshot extends HubStats {
  /** Milliseconds since the epoch, on the server: rates are counted between two snapshots. */
  time: number;
  tokenExpired: number;
  malformed: number;
}

const TEXT = { 'content-type': 'text/plain; charset=utf-8' };

export function snapshot(hub: Hub, counters: ServerCounters): StatsSnapshot {
  const stats = hub.stats();
  let malformed = 0;
  for (const count of counters.malformedRequests.values()) malformed += count;
  return {
    time: Date.now(),
    connections: stats.connections,
    waiting: stats.waiting,
    topics: stats.topics,
    history: stats.history,
    published: stats.published,
    delivered: stats.delivered,
    dropped: stats.dropped,
    evicted: stats.evicted,
    replayed: stats.replayed,
    resets: stats.resets,
    gaps: stats.gaps,
    backplaneConnected: stats.backplaneConnected,
    backplaneLag: stats.backplaneLag,
    tokenExpired: counters.expired,
    malformed,
  };
}

export function createStatsStream(options: StatsStreamOptions): StatsStream {
  const { hub, counters, verifier } = options;
  const streams = new Set<SseStream>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let stopped = false;

  function tick(): void {
    const data = snapshot(hub, counters);
    for (const stream of streams) void stream.send({ event: 'stats', data });
  }

  async function onConnect(request: SseRequest): Promise<ConnectResult> {
    if (verifier !== undefined) {
      const checked = await verifier.verify(bearerToken(request) ?? cookieToken(request));
      if (!checked.ok) {
        const { status, message, challenge } = checked.refusal;
        return { status, headers: { ...TEXT, 'www-authenticate': challenge }, body: `${message}; the dashboard's figures need a subscriber token for every topic (sse.subscribe ["*"])\n` };
      }
      if (!checked.grant.topics.includes(WILDCARD)) {
        return {
          status: 403,
          headers: { ...TEXT, 'www-authenticate': 'Bearer realm="serve-sse", error="insufficient_scope"' },
          body: 'the dashboard\'s figures cover every topic: they need a subscriber token whose sse.subscribe claim is ["*"]\n',
        };
      }
    }
    return defaultOnConnect(request);
  }

  async function writer(_request: SseRequest, stream: SseStream): Promise<void> {
    if (stopped) return void (await stream.send({ retry: 2000 }));
    streams.add(stream);
    timer ??= setInterval(tick, options.intervalMs);
    await stream.send({ event: 'stats', data: snapshot(hub, counters) });
    await new Promise<void>((resolve) => {
      if (stream.closed) resolve();
      else stream.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    streams.delete(stream);
    if (streams.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  }

  const handler = serveSse(writer, {
    onConnect,
    // An event every interval: no keep-alive comments needed.
    keepAlive: false,
    slowClientTimeout: options.slowClientTimeout,
    maxBuffered: options.maxBuffered,
    onSlowClient: 'close',
    logger: options.log,
  });

  function stop(retry: number): void {
    stopped = true;
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
    for (const stream of streams) {
      void stream.send({ retry }).finally(() => stream.close());
    }
  }

  return { handler, stop };
}
