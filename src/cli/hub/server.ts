/**
 * The hub server: routes, start-up and graceful shutdown around a library hub. Used by the bin and,
 * in-process, by the tests.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger as PinoLogger } from 'pino';
import { resolveCors } from '../../cors.js';
import { createHub, type CorsOption, type Hub, type HubOptions } from '../../index.js';
import { createVerifier, MIN_KEY_BYTES, type TokenVerifier } from './auth.js';
import { loadRedisBackplane } from './backplane.js';
import { DEFAULTS, type HubServerConfig } from './config.js';
import { ConnectionCap, clientAddress } from './limits.js';
import { METRICS_CONTENT_TYPE, renderMetrics, ServerCounters } from './metrics.js';
import { createPublishHandler } from './publish.js';
import { respond } from './respond.js';
import { createEventsEndpoint } from './subscribe.js';

export interface HubServerOptions extends Partial<HubServerConfig> {
  /** Where logs go. Default: pino JSON lines on stdout at `logLevel`. */
  logger?: PinoLogger;
}

export interface HubServer {
  server: Server;
  hub: Hub;
  /** `http://host:port`, with the port actually bound. */
  url: string;
  /**
   * Graceful shutdown: stop accepting, send every client the `shutdownRetry` hint, end the streams,
   * and resolve once everything is closed (cutting what remains after `shutdownTimeout`).
   */
  close(): Promise<void>;
}

/** Starts a hub server and resolves once it listens. @throws StartupError for `--redis` problems. */
export async function createHubServer(options: HubServerOptions = {}): Promise<HubServer> {
  const { logger, ...overrides } = options;
  const config: HubServerConfig = { ...DEFAULTS, ...withoutUndefined(overrides) };
  const log = logger ?? pino({ name: 'serve-sse-hub', level: config.logLevel });

  const hubOptions: HubOptions = { history: config.history, logger: log };
  if (config.redis !== undefined) hubOptions.backplane = await loadRedisBackplane(config.redis, config.redisKey, log);
  const hub = createHub(hubOptions);

  const publisher = await verifierFor(config.publisherKey, 'publish', log);
  const subscriber = await verifierFor(config.subscriberKey, 'subscribe', log);
  // A listed origin may send cookies (the subscriber token); "*" may not, or any site could.
  const cors: CorsOption | undefined =
    config.cors === undefined ? undefined : config.cors === '*' ? { origin: true } : { origin: config.cors, credentials: true };

  let closing = false;
  const isClosing = (): boolean => closing;
  const counters = new ServerCounters();
  const cap = new ConnectionCap(config.maxConnectionsPerIp);
  const events = createEventsEndpoint({
    hub,
    verifier: subscriber,
    cors,
    keepAlive: config.keepAlive,
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
    trustProxy: config.trustProxy,
    log,
    closing: isClosing,
  });

  function route(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    res.once('close', () => counters.response(path, res.statusCode));
    // While draining, no connection is kept for another request: the server can close sooner.
    if (closing) res.setHeader('connection', 'close');
    const method = req.method ?? 'GET';
    switch (path) {
      case '/events':
        if (method === 'GET' || (method === 'OPTIONS' && cors !== undefined && req.headers['access-control-request-method'] !== undefined)) {
          return subscribe(req, res);
        }
        return method === 'OPTIONS' ? void res.writeHead(204, { allow: 'GET, OPTIONS' }).end() : notAllowed(res, method, path, 'GET');
      case '/publish':
        if (method === 'POST' || method === 'OPTIONS') return void publish(req, res).catch((error: unknown) => failed(res, error));
        return notAllowed(res, method, path, 'POST');
      case '/healthz':
        if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, method, path, 'GET');
        return closing ? respond(res, 503, 'shutting down') : respond(res, 200, 'ok');
      case '/metrics':
        if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, method, path, 'GET');
        res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' });
        return void res.end(renderMetrics(hub.stats(), counters));
      default:
        return respond(res, 404, `no such endpoint: ${path.slice(0, 200)} (try GET /events, POST /publish, GET /healthz, GET /metrics)`);
    }
  }

  /** The per-address cap, counted over the whole request, before any token is checked. */
  function subscribe(req: IncomingMessage, res: ServerResponse): void {
    const address = clientAddress(req, config.trustProxy);
    if (!cap.take(address)) {
      log.info({ ip: address, max: config.maxConnectionsPerIp }, 'subscriber refused: too many connections from one address');
      return respond(res, 429, `too many event streams from ${address}: at most ${config.maxConnectionsPerIp} at once`);
    }
    res.once('close', () => cap.release(address));
    events.handler(req, res);
  }

  function failed(res: ServerResponse, error: unknown): void {
    log.error({ err: error }, 'request failed');
    if (!res.headersSent) respond(res, 500, 'internal error');
    else res.destroy();
  }

  const server = createServer(route);
  // A client that sends garbage gets a 400 from Node; it must not become an unhandled error.
  server.on('clientError', (_error, socket) => socket.destroy());
  server.listen(config.port, config.host);
  try {
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([error]) => {
        throw error;
      }),
    ]);
  } catch (error) {
    // A port in use, say: the hub (and its backplane connection) must not outlive the failure.
    await hub.close({ timeout: 0 });
    throw error;
  }
  const { address, port } = server.address() as AddressInfo;
  const host = config.host === undefined ? 'localhost' : address.includes(':') ? `[${address}]` : address;
  const url = `http://${host}:${port}`;
  log.info({ url, port, redis: config.redis !== undefined, publishing: publisher !== undefined, subscribing: subscriber === undefined ? 'open' : 'token' }, 'serve-sse hub listening');

  let shutdown: Promise<void> | undefined;
  function close(): Promise<void> {
    shutdown ??= (async () => {
      closing = true;
      const started = Date.now();
      log.info({ connections: hub.stats().connections, retry: config.shutdownRetry }, 'shutting down');
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      events.stop();
      // Spread over [retry, 2 × retry): the clients of a stopping instance do not all land at once.
      await hub.close({ retry: config.shutdownRetry, retryJitter: config.shutdownRetry, timeout: config.shutdownTimeout });
      // Streams ended; what is left are keep-alive sockets and requests in flight.
      server.closeIdleConnections();
      const left = Math.max(0, config.shutdownTimeout - (Date.now() - started));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([serverClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
      server.closeAllConnections();
      await serverClosed;
      log.info({ durationMs: Date.now() - started }, 'stopped');
    })();
    return shutdown;
  }

  return { server, hub, url, close };
}

async function verifierFor(key: string | undefined, action: 'publish' | 'subscribe', log: PinoLogger): Promise<TokenVerifier | undefined> {
  if (key === undefined) return undefined;
  if (Buffer.byteLength(key) < MIN_KEY_BYTES) {
    log.warn({ bytes: Buffer.byteLength(key) }, `the ${action === 'publish' ? 'publisher' : 'subscriber'} key is shorter than ${MIN_KEY_BYTES} bytes: HS256 wants at least ${MIN_KEY_BYTES} random bytes`);
  }
  return createVerifier(key, action);
}

function notAllowed(res: ServerResponse, method: string, path: string, allowed: string): void {
  respond(res, 405, `${method} is not allowed on ${path}; use ${allowed}`, { allow: `${allowed}, OPTIONS` });
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as Partial<T>;
}
