/**
 * `GET /events?topic=a&topic=b`: the subscriber's side. `onConnect` decides (token, topics,
 * permissions) before anything is written; the writer subscribes the stream to the hub, watches
 * its token's expiry and logs the connection, opened and closed, with its duration.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger as PinoLogger } from 'pino';
import { defaultOnConnect, serveSse, type ConnectResult, type CorsOption, type Hub, type SseHandler, type SseRequest, type SseStream } from '../../index.js';
import { bearerToken, checkTopics, cookieToken, type Grant, type Refusal, type TokenVerifier } from './auth.js';
import { ExpiryWatch } from '../../protocols/expiry.js';
import { clientAddress } from '../http/limits.js';
import type { ServerCounters } from '../http/metrics.js';
import { topicsProblem } from './topics.js';

export interface EventsOptions {
  hub: Hub;
  /** Undefined: subscribing is open. */
  verifier: TokenVerifier | undefined;
  cors: CorsOption | undefined;
  keepAlive: number;
  slowClientTimeout: number;
  maxBuffered: number;
  trustProxy: boolean;
  log: PinoLogger;
  counters: ServerCounters;
  /** True once shutdown began: late arrivals are told when to come back, not subscribed. */
  closing(): boolean;
  shutdownRetry: number;
}

export interface EventsEndpoint {
  handler: SseHandler;
  /** Stops the expiry timer (at shutdown). */
  stop(): void;
}

/** What `onConnect` decided, for the writer. */
interface Admission {
  topics: string[];
  exp: number | undefined;
  address: string;
}

const TEXT = { 'content-type': 'text/plain; charset=utf-8' };

export function createEventsEndpoint(options: EventsOptions): EventsEndpoint {
  const { hub, verifier, log, counters } = options;
  // Keyed by request, gone with it: no per-connection map to clean up.
  const admitted = new WeakMap<SseRequest, Admission>();
  /** Why a stream was ended by us, for its closing log line. */
  const endedBecause = new WeakMap<SseStream, string>();
  let serial = 0;

  const expiry = new ExpiryWatch<SseStream>((stream) => {
    counters.expired++;
    endedBecause.set(stream, 'token expired');
    // A comment: invisible to EventSource, but says why to someone reading the stream with curl.
    void stream.comment('token expired');
    stream.close();
  });

  async function onConnect(request: SseRequest): Promise<ConnectResult> {
    let exp: number | undefined;
    let grant: Grant | undefined;
    if (verifier !== undefined) {
      const checked = await verifier.verify(bearerToken(request) ?? cookieToken(request));
      if (!checked.ok) return refusal(checked.refusal);
      grant = checked.grant;
      exp = grant.exp;
    }
    const topics = [...new Set(new URL(request.url ?? '/', 'http://hub.invalid').searchParams.getAll('topic'))];
    const problem = topicsProblem(topics);
    if (problem !== undefined) {
      const hint = topics.length === 0 ? ': subscribe with /events?topic=NAME, repeating topic for several' : '';
      return { status: 400, headers: TEXT, body: `${problem}${hint}\n` };
    }
    if (grant !== undefined) {
      const denied = checkTopics(grant, topics, 'subscribe');
      if (denied !== undefined) return refusal(denied);
    }
    admitted.set(request, { topics, exp, address: clientAddress(request as IncomingMessage, options.trustProxy) });
    return defaultOnConnect(request);
  }

  async function writer(request: SseRequest, stream: SseStream): Promise<void> {
    const admission = admitted.get(request);
    if (admission === undefined) return;
    admitted.delete(request);
    if (options.closing()) {
      // Shutting down: a 503 would stop the browser for good; a retry hint brings it back later.
      await stream.send({ retry: options.shutdownRetry });
      return;
    }
    const conn = ++serial;
    const opened = Date.now();
    const { topics, exp, address } = admission;
    hub.subscribe(stream, topics);
    const unwatch = exp === undefined ? undefined : expiry.watch(stream, exp);
    log.info({ conn, ip: address, topics, lastEventId: stream.lastEventId }, 'subscriber connected');
    await new Promise<void>((resolve) => {
      if (stream.closed) resolve();
      else stream.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    unwatch?.();
    const reason = endedBecause.get(stream) ?? (options.closing() ? 'shutdown' : 'closed');
    log.info({ conn, ip: address, topics, durationMs: Date.now() - opened, reason }, 'subscriber disconnected');
  }

  const handler = serveSse(writer, {
    onConnect,
    cors: options.cors,
    keepAlive: options.keepAlive,
    slowClientTimeout: options.slowClientTimeout,
    maxBuffered: options.maxBuffered,
    // As a hub's own handler does: one slow client is disconnected (it resumes from its last
    // id), never waited for.
    onSlowClient: 'close',
    logger: log,
  });
  return { handler, stop: () => expiry.stop() };
}

function refusal({ status, message, challenge }: Refusal): ConnectResult {
  return { status, headers: { ...TEXT, 'www-authenticate': challenge }, body: `${message}\n` };
}
