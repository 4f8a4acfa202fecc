/**
 * The hub server: routes, start-up and graceful shutdown around a library hub. Used by the bin and,
 * in-process, by the tests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger as PinoLogger } from 'pino';
import { resolveCors } from '../cors.js';
import { createHub, type CorsOption, type Hub, type HubOptions, type SseHandler } from '../index.js';
import { createVerifier, type TokenVerifier } from './native/auth.js';
import { memoryPresence, type Presence } from '../backplanes/presence.js';
import { mercureHandler } from '../protocols/mercure/handler.js';
import { loadRedis } from './backplane.js';
import { createClientErrorHandler } from './http/client-errors.js';
import { DEFAULTS, type HubServerConfig } from './config.js';
import { Exchanges, type TrackedExchange } from './http/exchanges.js';
import { ConnectionCap, clientAddress } from './http/limits.js';
import { listen } from './http/listen.js';
import { METRICS_CONTENT_TYPE, metricFamilies, renderMetrics, ServerCounters } from './http/metrics.js';
import { clusterBackplane } from '../backplanes/cluster.js';
import { clusterPresence } from '../backplanes/cluster-presence.js';
import { answerReports, gatherReports, renderWorkerMetrics } from './workers.js';
import { createPublishHandler } from './native/publish.js';
import { errorKind, RepeatedLog } from './http/repeated-log.js';
import { respond } from './http/respond.js';
import { createEventsEndpoint } from './native/subscribe.js';
import { serveUiFile, UI_HEADERS, UI_PATH, UI_STATS_PATH } from './ui/routes.js';
import { createStatsStream } from './ui/stats-stream.js';

export interface HubServerOptions extends Partial<HubServerConfig> {
  /** Where logs go. Default: pino JSON lines on stdout at `logLevel`. */
  logger?: PinoLogger;
  /** Milliseconds between two lines about one repeated failure (see RepeatedLog). Default 10 000. */
  errorLogInterval?: number;
  /** With `ui`: milliseconds between two events of the dashboard's stats stream. Default 1000. */
  uiInterval?: number;
  /**
   * This process is worker number `worker` (1 to N) of `serve-sse hub --workers N`, forked by the
   * primary (src/cli/hub-workers.ts): its log lines carry `worker`, every response says it in a
   * `serve-sse-worker` header, `/metrics` gathers every worker's figures through the primary, and
   * without `redis` its hub runs on the primary's log (`clusterBackplane()`, `clusterPresence()`).
   */
  worker?: number;
}

export interface HubServer {
  server: Server;
  hub: Hub;
  /** `http://host:port`, with the port actually bound. */
  url: string;
  /**
   * Graceful shutdown: send every client the `shutdownRetry` hint and end the streams, answering
   * whatever arrives meanwhile with "shutting down"; then stop listening, and resolve once
   * everything is closed (cutting what remains after `shutdownTimeout`).
   */
  close(): Promise<void>;
}

/**
 * After the streams have ended, the listener stays open until no request or connection has come
 * for this long: a publisher between two requests then gets its 503 (and goes elsewhere) rather
 * than a connection closed under the request it is sending.
 */
const DRAIN_QUIET_MS = 200;

/**
 * The end of the shutdown timeout kept for requests in progress when the listener closes (at most
 * a tenth of the timeout): a client that never stopped sending through the drain should still get
 * the answers to the requests it had sent.
 */
const LAST_PART_MS = 500;

/** Starts a hub server and resolves once it listens. @throws StartupError for `--redis` problems. */
export async function createHubServer(options: HubServerOptions = {}): Promise<HubServer> {
  const { logger, errorLogInterval = 10_000, uiInterval = 1000, worker, ...overrides } = options;
  const config: HubServerConfig = { ...DEFAULTS, ...withoutUndefined(overrides) };
  const baseLog = logger ?? pino({ name: 'serve-sse-hub', level: config.logLevel });
  const log = worker === undefined ? baseLog : baseLog.child({ worker });
  const errors = new RepeatedLog((fields, message) => log.error(fields, message), errorLogInterval);

  const hubOptions: HubOptions = { history: config.history, logger: log };
  let presence: Presence = memoryPresence();
  if (config.redis !== undefined) {
    const redis = { url: config.redis, key: config.redisKey, heartbeatMs: config.presenceHeartbeat };
    ({ backplane: hubOptions.backplane, presence } = await loadRedis(redis, log));
  } else if (worker !== undefined) {
    // The primary holds the log and the subscription list of every worker.
    hubOptions.backplane = clusterBackplane();
    presence = clusterPresence();
  }
  const hub = createHub(hubOptions);

  const publisher = await verifierFor(config, 'publisher', log);
  const subscriber = await verifierFor(config, 'subscriber', log);
  // A listed origin may send cookies (the subscriber token); "*" may not, or any site could.
  const cors: CorsOption | undefined =
    config.cors === undefined ? undefined : config.cors === '*' ? { origin: true } : { origin: config.cors, credentials: true };

  const workerHeader = worker === undefined ? undefined : String(worker);
  let closing = false;
  const isClosing = (): boolean => closing;
  const counters = new ServerCounters();
  const exchanges = new Exchanges();
  const cap = new ConnectionCap(config.maxConnectionsPerIp);
  // A worker answers the primary's call for figures, for a /metrics served by any worker.
  const stopReports = worker === undefined ? undefined : answerReports(worker, () => metricFamilies(hub.stats(), counters));
  const events = createEventsEndpoint({
    hub,
    verifier: subscriber,
    cors,
    keepAlive: config.keepAlive,
    slowClientTimeout: config.slowClientTimeout,
    maxBuffered: config.maxBuffered,
    trustProxy: config.trustProxy,
    log,
    counters,
    closing: isClosing,
    shutdownRetry: config.shutdownRetry,
  });
  const publish = createPublishHandler({
    hub,
    verifier: publisher,
    cors: cors === undefined ? undefined : resolveCors(cors, 'POST'),
    maxBody: config.maxBody,
    bodyTimeout: config.bodyTimeout,
    trustProxy: config.trustProxy,
    log,
    errors,
    closing: isClosing,
  });

  // Not a hub subscription: a dashboard does not count among the connections it shows.
  const stats = config.ui
    ? createStatsStream({
        hub,
        counters,
        verifier: subscriber,
        intervalMs: uiInterval,
        slowClientTimeout: config.slowClientTimeout,
        maxBuffered: config.maxBuffered,
        log,
      })
    : undefined;

  const mercure = mercureHandler(hub, {
    publisherKey: config.publisherKey,
    publisherAlg: config.publisherAlg,
    publisherJwksUrl: config.publisherJwksUrl,
    subscriberKey: config.subscriberKey,
    subscriberAlg: config.subscriberAlg,
    subscriberJwksUrl: config.subscriberJwksUrl,
    anonymous: config.anonymous,
    jwtIssuer: config.jwtIssuer,
    jwtAudience: config.jwtAudience,
    cors: config.cors,
    publishOrigins: config.publishOrigins,
    subscriptions: config.subscriptions,
    presence,
    maxLifetime: config.maxLifetime,
    url: config.publicUrl === undefined ? undefined : new URL(MERCURE_PATH, config.publicUrl).href,
    resourceMetadata: config.publicUrl === undefined ? undefined : new URL(METADATA_PATH, config.publicUrl).href,
    maxBody: config.maxBody,
    bodyTimeout: config.bodyTimeout,
    keepAlive: config.keepAlive,
    slowClientTimeout: config.slowClientTimeout,
    maxBuffered: config.maxBuffered,
    logger: log,
  });

  /** Mercure at /.well-known/mercure: the per-address cap on its streams, and the drain, as for /events. */
  function routeMercure(req: IncomingMessage, res: ServerResponse, path: string, exchange: TrackedExchange): void {
    const method = req.method ?? 'GET';
    const subscribing = path === MERCURE_PATH && (method === 'GET' || method === 'HEAD');
    if (closing) {
      if (subscribing) return retryLater(res, config.shutdownRetry);
      if (method === 'POST') return respond(res, 503, 'the hub is shutting down; publish to another instance', { connection: 'close' });
    }
    if (!subscribing) return mercure(req, res);
    const address = clientAddress(req, config.trustProxy);
    if (!cap.take(address)) {
      log.info({ ip: address, max: config.maxConnectionsPerIp }, 'subscriber refused: too many connections from one address');
      return respond(res, 429, `too many event streams from ${address}: at most ${config.maxConnectionsPerIp} at once`);
    }
    exchange.onDone(() => cap.release(address));
    mercure(req, res);
  }

  function route(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const exchange = exchanges.begin(req, res);
    // A response whose head was never even composed (its client left first) is not one to count.
    exchange.onDone(() => {
      if (res.headersSent) counters.response(path, res.statusCode);
    });
    // While draining, no connection is kept for another request: the server can close sooner.
    if (closing) res.setHeader('connection', 'close');
    if (workerHeader !== undefined) res.setHeader('serve-sse-worker', workerHeader);
    const method = req.method ?? 'GET';
    if (path === MERCURE_PATH || path.startsWith(`${MERCURE_PATH}/`)) return routeMercure(req, res, path, exchange);
    // Without --ui, /ui is like any unknown path: 404.
    if (stats !== undefined && (path === UI_PATH || path.startsWith(`${UI_PATH}/`))) {
      if (path !== UI_STATS_PATH) return serveUiFile(req, res, path);
      if (method !== 'GET') return respond(res, 405, `${method} is not allowed on ${path}; use GET`, { allow: 'GET', ...UI_HEADERS });
      if (closing) return retryLater(res, config.shutdownRetry);
      for (const [name, value] of Object.entries(UI_HEADERS)) res.setHeader(name, value);
      return capped(req, res, exchange, stats.handler);
    }
    switch (path) {
      case METADATA_PATH:
        if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, method, path, 'GET');
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=3600' });
        return void res.end(JSON.stringify(resourceMetadata(config)));
      case '/events':
        if (method === 'GET' || (method === 'OPTIONS' && cors !== undefined && req.headers['access-control-request-method'] !== undefined)) {
          return capped(req, res, exchange, events.handler);
        }
        return method === 'OPTIONS' ? void res.writeHead(204, { allow: 'GET, OPTIONS' }).end() : notAllowed(res, method, path, 'GET');
      case '/publish':
        if (method === 'POST' || method === 'OPTIONS') return void publish(req, res).catch((error: unknown) => failed(res, error));
        return notAllowed(res, method, path, 'POST');
      case '/healthz':
        if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, method, path, 'GET');
        // Liveness only: a backplane outage must not get every instance restarted.
        return closing ? respond(res, 503, 'shutting down') : respond(res, 200, 'ok');
      case '/readyz':
        if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, method, path, 'GET');
        if (closing) return respond(res, 503, 'not ready: shutting down');
        if (hub.stats().backplaneConnected === false) return respond(res, 503, 'not ready: the backplane is disconnected, so publishing would fail');
        return respond(res, 200, 'ready');
      case '/metrics':
        if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, method, path, 'GET');
        if (worker !== undefined) return void workerMetrics().then((text) => {
          res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' });
          res.end(text);
        }, (error: unknown) => failed(res, error));
        res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' });
        return void res.end(renderMetrics(hub.stats(), counters));
      default:
        return respond(res, 404, `no such endpoint: ${path.slice(0, 200)} (try GET /events, POST /publish, ${MERCURE_PATH}, GET /healthz, GET /readyz, GET /metrics)`);
    }
  }

  /** Every worker's figures, each labelled with its number, gathered through the primary. */
  async function workerMetrics(): Promise<string> {
    const own = metricFamilies(hub.stats(), counters);
    return renderWorkerMetrics(worker!, own, await gatherReports());
  }

  /** A stream behind the per-address cap, counted over the whole request, before any token is checked. */
  function capped(req: IncomingMessage, res: ServerResponse, exchange: TrackedExchange, handler: SseHandler): void {
    const address = clientAddress(req, config.trustProxy);
    if (!cap.take(address)) {
      log.info({ ip: address, max: config.maxConnectionsPerIp }, 'subscriber refused: too many connections from one address');
      return respond(res, 429, `too many event streams from ${address}: at most ${config.maxConnectionsPerIp} at once`);
    }
    exchange.onDone(() => cap.release(address));
    handler(req, res);
  }

  function failed(res: ServerResponse, error: unknown): void {
    errors.report(`request failed ${errorKind(error)}`, { err: error }, 'request failed');
    if (!res.headersSent) respond(res, 500, 'internal error');
    else res.destroy();
  }

  // Node waits 60 s for a request head and 300 s for a whole request, and looks only every 30 s:
  // a client that sends slowly, or stops half-way, holds its connection for minutes. Here a head
  // must come within --body-timeout (else 408, from client-errors.ts), and a whole request within
  // twice that: a backstop for bodies on other endpoints, behind /publish's own 408 (which comes
  // first, with the endpoint counted). Checked often enough for the bound to hold within a second.
  const headersTimeout = config.bodyTimeout;
  const requestTimeout = 2 * config.bodyTimeout;
  const server = createServer(
    { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.round(config.bodyTimeout / 4))) },
    route,
  );
  server.on('connection', () => exchanges.connected());
  server.on(
    'clientError',
    createClientErrorHandler({
      answerStarted: (socket) => exchanges.answerStarted(socket),
      bodyArriving: (socket) => exchanges.bodyArriving(socket),
      headersTimeout,
      requestTimeout,
      refused: (status, code) => {
        counters.malformed(status);
        log.debug({ status, code }, 'malformed request refused');
      },
    }),
  );
  try {
    await listen(server, config.port, config.host);
  } catch (error) {
    // A port in use, say: the hub (and its backplane connection) must not outlive the failure.
    await hub.close({ timeout: 0 });
    await presence.close();
    errors.stop();
    stopReports?.();
    throw error;
  }
  // From now on a server error (EMFILE on accept, say) is logged, never thrown: without a listener
  // it would be an uncaught exception and end the process.
  server.on('error', (error: Error) => errors.report(`server error ${errorKind(error)}`, { err: error }, 'server error'));
  const { address, port } = server.address() as AddressInfo;
  const host = config.host === undefined ? 'localhost' : address.includes(':') ? `[${address}]` : address;
  const url = `http://${host}:${port}`;
  // A worker's own line: the primary says "serve-sse hub listening" once every worker listens.
  log.info(
    { url, port, redis: config.redis !== undefined, publishing: publisher !== undefined, subscribing: subscriber === undefined ? 'open' : 'token' },
    worker === undefined ? 'serve-sse hub listening' : 'worker listening',
  );

  let shutdown: Promise<void> | undefined;
  function close(): Promise<void> {
    shutdown ??= (async () => {
      closing = true;
      const started = Date.now();
      const left = (): number => Math.max(0, config.shutdownTimeout - (Date.now() - started));
      // Kept for the end: requests in progress when the listener closes get to finish.
      const lastPart = Math.min(LAST_PART_MS, Math.floor(config.shutdownTimeout / 10));
      log.info({ connections: hub.stats().connections, retry: config.shutdownRetry }, 'shutting down');
      events.stop();
      stats?.stop(config.shutdownRetry);
      // The drain. The listener stays open meanwhile: /healthz and /readyz answer 503, late
      // subscribers a retry hint, publishers 503, each with Connection: close; a closed port
      // would tell them nothing. Spread over [retry, 2 × retry): the clients of a stopping
      // instance do not all land at once.
      await hub.close({ retry: config.shutdownRetry, retryJitter: config.shutdownRetry, timeout: config.shutdownTimeout - lastPart });
      // This instance's subscriptions leave the shared list now, not when its heartbeat runs out.
      await presence.close().catch((error: unknown) => log.warn({ err: error }, 'the presence store did not close cleanly'));
      await exchanges.quiet(DRAIN_QUIET_MS, left() - lastPart);
      // Stop listening; Node closes the idle keep-alive connections now, and each busy one after
      // its answer (they all say Connection: close). What is still busy at the timeout is cut.
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([serverClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, left())))]);
      clearTimeout(timer);
      server.closeAllConnections();
      await serverClosed;
      errors.flush();
      errors.stop();
      stopReports?.();
      log.info({ durationMs: Date.now() - started }, 'stopped');
    })();
    return shutdown;
  }

  return { server, hub, url, close };
}

/** The native protocol's verifier for a role, from the same key settings Mercure uses; none without a key. */
async function verifierFor(config: HubServerConfig, role: 'publisher' | 'subscriber', log: PinoLogger): Promise<TokenVerifier | undefined> {
  const keys = role === 'publisher'
    ? { key: config.publisherKey, alg: config.publisherAlg, jwksUrl: config.publisherJwksUrl }
    : { key: config.subscriberKey, alg: config.subscriberAlg, jwksUrl: config.subscriberJwksUrl };
  if (keys.key === undefined && keys.jwksUrl === undefined) return undefined;
  const names = { key: `--${role}-key`, alg: `--${role}-alg`, jwksUrl: `--${role}-jwks-url` };
  return createVerifier(keys, role === 'publisher' ? 'publish' : 'subscribe', names, (level, message, details) => log[level](details ?? {}, message));
}

const MERCURE_PATH = '/.well-known/mercure';
/** Where a draft-08 client finds the hub's OAuth protected resource metadata (RFC 9728). */
const METADATA_PATH = '/.well-known/oauth-protected-resource/.well-known/mercure';

/** RFC 9728 metadata for the Mercure endpoint: its resource identifier, how tokens may come, its draft. */
function resourceMetadata(config: HubServerConfig): Record<string, unknown> {
  const resource = config.jwtAudience ?? (config.publicUrl === undefined ? undefined : new URL(MERCURE_PATH, config.publicUrl).href);
  return {
    ...(resource === undefined ? {} : { resource }),
    ...(config.subscriberJwksUrl === undefined ? {} : { jwks_uri: config.subscriberJwksUrl }),
    bearer_methods_supported: ['header', 'query'],
    mercure_cookie: true,
    mercure_version: 8,
  };
}

/** A subscriber arriving while the hub drains: a 200 stream with a retry hint, ended (an error status would stop a browser for good). */
function retryLater(res: ServerResponse, retry: number): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`retry: ${retry}\n\n`);
}

function notAllowed(res: ServerResponse, method: string, path: string, allowed: string): void {
  respond(res, 405, `${method} is not allowed on ${path}; use ${allowed}`, { allow: `${allowed}, OPTIONS` });
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as Partial<T>;
}
