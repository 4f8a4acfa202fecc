/**
 * `mercureHandler(hub, options)`: the Mercure protocol over a hub, at the route where it is
 * mounted (`/.well-known/mercure` in the hub server). One handler, in the form of every serve-sse
 * handler (`(req, res, next?)` and `fetch(request)`), serves both dialects:
 *
 * - `GET`: subscribe (draft-07 `topic` selectors, draft-08 `match` / `match_urlpattern`), with
 *   replay after `Last-Event-ID`, `lastEventID` or `last_event_id`, private updates to
 *   subscribers whose token allows them, and the stream closed at the token's `exp`;
 * - `POST`: publish (form fields), with the ids the publishers choose;
 * - `GET /subscriptions[/…]`: the active subscriptions, from a {@link Presence} (every instance's,
 *   with a shared one), announced as they start and end by private updates.
 *
 * The protocol only translates: fan-out, replay, ids and slow clients are the hub's.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { memoryPresence, type Presence } from '../../backplanes/presence.js';
import { defaultOnConnect, type ConnectResult } from '../../connect.js';
import { resolveCors, type Cors, type CorsOption } from '../../cors.js';
import { HUB_INTERNALS, type Hub, type HubInternals } from '../../hub/hub.js';
import type { Interest, PrivateAccess, TopicMatcher } from '../../hub/interest.js';
import { consoleLogger, type Logger } from '../../logger.js';
import { contentType, readBody } from '../../request-body.js';
import { requestHeader } from '../../request-header.js';
import { serveSse, type NextFunction, type SseHandler } from '../../serve.js';
import type { SseRequest, SseStream } from '../../stream.js';
import type { NodeResponse } from '../../transports/node.js';
import { ExpiryWatch } from '../expiry.js';
import { sendNode, text, toResponse, json, type Answer } from './answer.js';
import { createMercureAuth, type MercureAuth, type MercureGrant, type MercureKeyOptions } from './auth.js';
import { compileSelector, MatcherError, type Selector } from './matchers.js';
import { parsePublication } from './publication.js';
import { parseSubscribe, quote, type Dialect, type SelectorSpec } from './subscribe-request.js';
import { parseSubscriptionsPath, presenceGroup, shownDocument, subscriptionDocument, subscriptionsDocument, subscriptionTopics, SUBSCRIPTIONS_PATH } from './subscriptions.js';

export interface MercureOptions extends MercureKeyOptions {
  /** With a subscriber key, still let subscribers without a token in, for public updates only. */
  anonymous?: boolean;
  /** Origins allowed cross-origin (Mercure's `cors_origins`): a list, with cookies; `"*"`, without. */
  cors?: readonly string[] | '*';
  /**
   * Origins allowed to publish with a cookie (Mercure's `publish_origins`): the defence against
   * cross-site request forgery. Default: the hub's own origin only (from the request's Host).
   */
  publishOrigins?: readonly string[];
  /** Active subscriptions: events when subscriptions start and end, and the API. Default true. */
  subscriptions?: boolean;
  /** Where active subscriptions are kept: `redisPresence()` spans every instance. Default: in memory. */
  presence?: Presence;
  /**
   * The hub's public URL: relative topics and URL patterns resolve against it, and it decides the
   * reserved namespace. Default `https://hub.invalid/.well-known/mercure` (relative against relative works without it).
   */
  url?: string;
  /**
   * The absolute URL of the hub's OAuth protected resource metadata (RFC 9728), named by every
   * 401 challenge so that a draft-08 client can find the audience to ask for. The hub server
   * serves it and sets this from `--public-url`.
   */
  resourceMetadata?: string;
  /** Longest a subscriber's connection may stay open whatever its token says (ms); then it reconnects and authenticates again. Default: none. */
  maxLifetime?: number;
  /** Largest publish body, in bytes. Default 1 MiB. */
  maxBody?: number;
  /** Milliseconds a publish body may take to arrive. Default 10 000. */
  bodyTimeout?: number;
  /** Keep-alive comments (ms), as `serveSse`. Default 15 000. */
  keepAlive?: number;
  slowClientTimeout?: number;
  maxBuffered?: number;
  logger?: Logger;
}

/** What `onConnect` decided, for the writer. */
interface Admission {
  interest: Interest;
  selectors: readonly SelectorSpec[];
  dialect: Dialect;
  grant: MercureGrant | undefined;
  lastEventId: string | undefined;
  earliest: boolean;
}

const DEFAULT_URL = 'https://hub.invalid/.well-known/mercure';
const HUB_PATH = '/.well-known/mercure';

export function mercureHandler(hub: Hub, options: MercureOptions = {}): SseHandler {
  const internals = (hub as unknown as Record<symbol, HubInternals | undefined>)[HUB_INTERNALS];
  if (internals === undefined) throw new TypeError('serve-sse: mercureHandler(hub) needs a hub made by createHub()');
  const {
    anonymous = false,
    subscriptions = true,
    url = DEFAULT_URL,
    maxLifetime,
    maxBody = 1024 * 1024,
    bodyTimeout = 10_000,
    logger = consoleLogger,
  } = options;
  checkUrl(url);
  if (maxLifetime !== undefined && !(Number.isSafeInteger(maxLifetime) && maxLifetime > 0)) throw optionError('maxLifetime', 'a positive number of milliseconds', maxLifetime);
  const presence = options.presence ?? memoryPresence();
  // The hub's resource identifier is its URL unless told otherwise: the audience its at+jwt tokens name.
  const jwtAudience = options.jwtAudience ?? options.url;
  const auth: MercureAuth = createMercureAuth({ ...options, jwtAudience, base: url, logger });
  const cors = mercureCors(options.cors);
  const publishCors = options.cors === undefined ? undefined : resolveCors(corsOption(options.cors), 'POST');
  const publishOrigins = options.publishOrigins?.map((origin) => origin.toLowerCase());
  const admitted = new WeakMap<SseRequest, Admission>();
  const expiry = new ExpiryWatch<SseStream>((stream) => {
    // A comment: invisible to EventSource, but says why to someone reading the stream with curl.
    void stream.comment('token expired');
    stream.close();
  });

  presence.onExpired((entries) => {
    // Another instance died with these subscriptions open: they have ended, and watchers are told.
    for (const entry of entries) void announce((entry.data as { topics?: [string, string] }).topics, { ...(entry.data as object), active: false });
  });
  presence.onRestored((entries) => {
    // This instance was taken for dead (cut off from the shared store) and is back: its
    // subscriptions, announced as ended meanwhile, are announced as active again.
    for (const entry of entries) void announce((entry.data as { topics?: [string, string] }).topics, { ...(entry.data as object), active: true });
  });

  async function onConnect(request: SseRequest): Promise<ConnectResult> {
    const target = new URL(request.url ?? '/', 'http://hub.invalid');
    const parsed = parseSubscribe(target.search.slice(1), lastEventIdHeader(request));
    if ('problem' in parsed) return answerOf(invalidRequest(parsed.problem));
    const identity = await auth.subscriber(request);
    if (!identity.ok) return answerOf(identity.answer);
    if (identity.grant === undefined && auth.subscriberTokensRequired && !anonymous) return answerOf(auth.missingToken());
    let compiled: Selector[];
    try {
      compiled = parsed.selectors.map(({ kind, source }) => compileSelector(kind, source, { base: url }));
    } catch (error) {
      if (error instanceof MatcherError) return answerOf(invalidRequest(error.message));
      throw error;
    }
    const interest = interestOf(compiled, identity.grant);
    if (parsed.lastEventId !== undefined) await internals!.caughtUp(parsed.lastEventId);
    const headers: Record<string, string> = { ...defaultOnConnect(request).headers };
    if (parsed.lastEventId !== undefined || parsed.earliest) {
      // The id before the first event sent, or "earliest": how a client detects that it lost events.
      // draft-07 and current draft-08 name it Last-Event-ID; the draft-08 snapshot clients know
      // calls it Mercure-Last-Event-ID: a draft-08 request gets both.
      const anchor = (parsed.earliest ? undefined : internals!.anchor(parsed.lastEventId, interest)) ?? 'earliest';
      headers['Last-Event-ID'] = anchor;
      if (parsed.dialect === 'draft-08') headers['Mercure-Last-Event-ID'] = anchor;
      headers['Access-Control-Expose-Headers'] = 'Last-Event-ID, Mercure-Last-Event-ID';
    }
    // A token in the URL: caches must not keep the answer for anyone else.
    if (identity.grant?.via === 'query') headers['Cache-Control'] = `private, ${headers['Cache-Control']}`;
    admitted.set(request, { interest, selectors: parsed.selectors, dialect: parsed.dialect, grant: identity.grant, lastEventId: parsed.lastEventId, earliest: parsed.earliest });
    return { status: 200, headers };
  }

  async function writer(request: SseRequest, stream: SseStream): Promise<void> {
    const admission = admitted.get(request);
    if (admission === undefined) return;
    admitted.delete(request);
    const { interest, selectors, dialect, grant } = admission;
    hub.subscribe(stream, interest, admission.earliest ? { fromEarliest: true } : { after: admission.lastEventId });
    if (stream.closed) return;
    const closeAt = closingTime(grant?.exp, maxLifetime);
    const unwatch = closeAt === undefined ? undefined : expiry.watch(stream, closeAt);
    const subscriber = subscriberId(grant?.sub);
    const connection = randomUUID();
    const documents = subscriptions ? selectors.map((selector) => ({ selector, document: subscriptionDocument(selector, dialect, subscriber, true, grant?.payloadFor(selector.source)) })) : [];
    for (const { selector, document } of documents) {
      const topics = subscriptionTopics(selector, dialect, subscriber);
      presence.add({ id: `${connection} ${document.id}`, group: presenceGroup(selector), data: { ...document, topics } });
      void announce(topics, document);
    }
    await new Promise<void>((resolve) => {
      if (stream.closed) resolve();
      else stream.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    unwatch?.();
    for (const { selector, document } of documents) {
      presence.remove(`${connection} ${document.id}`);
      void announce(subscriptionTopics(selector, dialect, subscriber), { ...document, active: false });
    }
    if (grant?.sub !== undefined) releaseSubject(grant.sub);
  }

  /** Connections open per token subject on this instance, for ids that are unique among active subscriptions. */
  const subjects = new Map<string, number>();

  /**
   * The subscriber's id: unforgeable (the token's validated `sub`, or one of the hub's own
   * making), shared by the subscriptions of one connection, and unique among the active ones: a
   * second connection with the same `sub` open at once gets `<sub>#<uuid>`. With a presence that
   * several instances share, the first one on this instance is `<sub>#<instance>`: the same `sub`
   * may be connected to another instance too.
   */
  function subscriberId(sub: string | undefined): string {
    if (sub === undefined) return `urn:uuid:${randomUUID()}`;
    const open = subjects.get(sub) ?? 0;
    subjects.set(sub, open + 1);
    if (open > 0) return `${sub}#${randomUUID()}`;
    return presence.instance === undefined ? sub : `${sub}#${presence.instance}`;
  }

  function releaseSubject(sub: string): void {
    const open = subjects.get(sub) ?? 0;
    if (open <= 1) subjects.delete(sub);
    else subjects.set(sub, open - 1);
  }

  /** A subscription event: a private update, to watchers whose token allows its topics. */
  async function announce(topics: readonly string[] | undefined, document: object): Promise<void> {
    if (topics === undefined) return;
    const shown = shownDocument(document);
    try {
      await hub.publish([...topics], { data: JSON.stringify(shown) }, { private: true, id: `urn:uuid:${randomUUID()}` });
    } catch (error) {
      logger.warn({ err: error }, 'serve-sse: a Mercure subscription event could not be published');
    }
  }

  const events = serveSse(writer, {
    onConnect,
    cors: options.cors === undefined ? undefined : corsOption(options.cors),
    keepAlive: options.keepAlive,
    onSlowClient: 'close',
    slowClientTimeout: options.slowClientTimeout,
    maxBuffered: options.maxBuffered,
    logger,
  });

  /** POST: a publication, as text in, an id out. */
  async function publish(request: IncomingMessage | Http2ServerRequest | Request, since: number): Promise<Answer> {
    const verdict = publishCors?.check(request as SseRequest);
    if (verdict?.kind === 'answer') return { status: verdict.status, headers: verdict.headers, body: verdict.body ?? '' };
    const corsHeaders = verdict?.headers ?? {};
    const withCors = (answer: Answer): Answer => ({ ...answer, headers: { ...corsHeaders, ...answer.headers } });
    if (request.method === 'OPTIONS') return withCors({ status: 204, headers: { allow: 'GET, POST, OPTIONS' }, body: '' });
    if (!auth.publishing) return withCors(text(403, 'publishing is disabled on this hub: it has no publisher key'));
    const identity = await auth.publisher(request as SseRequest);
    if (!identity.ok) return withCors(identity.answer);
    const grant = identity.grant;
    if (grant === undefined) return withCors(auth.missingToken());
    if (grant.via === 'cookie' && !sameOrigin(request as SseRequest, publishOrigins)) {
      return withCors(text(403, 'a publication authorised by a cookie must come from an allowed origin (Origin or Referer): see publish_origins'));
    }
    const { essence, utf8 } = contentType(requestHeader(request as SseRequest, 'content-type'));
    if (essence !== 'application/x-www-form-urlencoded' || !utf8) {
      return withCors(invalidRequest('a Mercure publication is sent as application/x-www-form-urlencoded, in UTF-8'));
    }
    const body = await readBody(request as IncomingMessage, { maxBody, bodyTimeout, since });
    if (body === 'too large') return withCors(text(413, `the body is larger than the limit of ${maxBody} bytes`, { connection: 'close' }));
    if (body === 'too slow') return withCors(text(408, `the body did not arrive within ${bodyTimeout} ms`, { connection: 'close' }));
    let form: string;
    try {
      form = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      return withCors(invalidRequest('the body is not valid UTF-8'));
    }
    const parsed = parsePublication(form, url);
    if (!parsed.ok) return withCors(parsed.status === 400 ? invalidRequest(parsed.problem) : text(parsed.status, parsed.problem, parsed.status === 413 ? { connection: 'close' } : {}));
    const { topics, data, id, type, retry } = parsed.publication;
    const denied = topics.find((topic) => !grant.publish.some((selector) => selector.matches(topic)));
    if (denied !== undefined) return withCors(auth.insufficientScope(`the token does not allow publishing to ${quote(denied)}`));
    try {
      const published = await hub.publish(
        [...topics],
        { event: type, data: data ?? '', retry },
        { id: id ?? `urn:uuid:${randomUUID()}`, private: parsed.publication.private },
      );
      return withCors({ status: 200, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, body: published });
    } catch (error) {
      if (error instanceof TypeError) return withCors(invalidRequest(error.message.replace(/^serve-sse: /, '')));
      logger.error({ err: error }, 'serve-sse: a Mercure publication failed');
      return withCors(text(503, `the hub could not publish the update: ${(error as Error).message}`));
    }
  }

  /** GET /subscriptions…: who is subscribed, for a token allowed to see it. */
  async function listSubscriptions(request: SseRequest, path: string): Promise<Answer> {
    const query = subscriptions ? parseSubscriptionsPath(path) : undefined;
    if (query === undefined) return text(404, 'no such subscriptions resource');
    const identity = await auth.subscriber(request);
    if (!identity.ok) return identity.answer;
    if (identity.grant === undefined) return auth.missingToken();
    const resource = `${HUB_PATH}${path}`.replace(/\/$/, '');
    if (!identity.grant.subscribe.some((selector) => selector.matches(resource))) {
      return auth.insufficientScope(`the token does not allow reading ${quote(resource)}`);
    }
    const document = await subscriptionsDocument(presence, query, resource, internals!.lastEventId());
    if (document === undefined) return text(404, 'no such subscription');
    const answer = json(200, document, 'application/ld+json');
    // A token in the URL makes the answer one user's: no shared cache may keep it.
    if (identity.grant.via === 'query') answer.headers['cache-control'] = `private, ${answer.headers['cache-control']}`;
    return answer;
  }

  function route(pathOf: string): 'hub' | { api: string } | undefined {
    const at = pathOf.indexOf(HUB_PATH);
    const path = at === -1 ? pathOf : pathOf.slice(at + HUB_PATH.length);
    if (path === '' || path === '/') return 'hub';
    if (path === SUBSCRIPTIONS_PATH.slice(HUB_PATH.length) || path.startsWith(`${SUBSCRIPTIONS_PATH.slice(HUB_PATH.length)}/`)) return { api: path };
    return undefined;
  }

  const handler = (req: IncomingMessage | Http2ServerRequest, res: import('node:http').ServerResponse | import('node:http2').Http2ServerResponse, next?: NextFunction): void => {
    const since = Date.now();
    const target = route(pathname(req.url ?? '/'));
    const method = req.method ?? 'GET';
    const reply = (promise: Promise<Answer>): void => {
      promise.then(
        (answer) => sendNode(res as NodeResponse, answer, method === 'HEAD'),
        (error: unknown) => {
          logger.error(error, 'serve-sse: the Mercure endpoint failed');
          sendNode(res as NodeResponse, text(500, 'internal error'));
        },
      );
    };
    if (target === undefined) return next !== undefined ? next() : reply(Promise.resolve(text(404, `no such Mercure resource: ${quote(req.url ?? '')}`)));
    if (target !== 'hub') return method === 'GET' || method === 'HEAD' ? reply(listSubscriptions(req, target.api)) : reply(Promise.resolve(notAllowed('GET')));
    if (method === 'POST' || (method === 'OPTIONS' && isPreflightFor(req, 'POST'))) return reply(publish(req, since));
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return events(req, res, next);
    reply(Promise.resolve(notAllowed('GET, POST')));
  };
  handler.fetch = async (request: Request): Promise<Response> => {
    const since = Date.now();
    const target = route(new URL(request.url).pathname);
    const head = request.method === 'HEAD';
    try {
      if (target === undefined) return toResponse(text(404, 'no such Mercure resource'), head);
      if (target !== 'hub') return toResponse(request.method === 'GET' || head ? await listSubscriptions(request, target.api) : notAllowed('GET'), head);
      if (request.method === 'POST' || (request.method === 'OPTIONS' && isPreflightFor(request, 'POST'))) return toResponse(await publish(request, since));
      if (request.method === 'GET' || head || request.method === 'OPTIONS') return events.fetch(request);
      return toResponse(notAllowed('GET, POST'));
    } catch (error) {
      logger.error(error, 'serve-sse: the Mercure endpoint failed');
      return toResponse(text(500, 'internal error'));
    }
  };
  return handler;
}

/** The subscription's interest: exact names looked up, the rest matched; its token's private access. */
function interestOf(selectors: readonly Selector[], grant: MercureGrant | undefined): Interest {
  const topics: string[] = [];
  const matchers: TopicMatcher[] = [];
  for (const selector of selectors) {
    // A selector that can only ever equal one topic is looked up, not matched: the fast path.
    if (selector.source !== '*' && (selector.kind === 'exact' || (selector.kind === 'template' && !/[{}]/.test(selector.source)))) topics.push(selector.source);
    else matchers.push(selector);
  }
  return { topics, matchers, access: grant === undefined || grant.subscribe.length === 0 ? undefined : accessOf(grant.subscribe) };
}

/** Private updates a token allows: those with a topic one of its subscribe selectors matches. */
function accessOf(selectors: readonly Selector[]): PrivateAccess {
  const key = selectors.map((selector) => selector.key).sort().join('\n');
  return { key, allows: (topic) => selectors.some((selector) => selector.matches(topic)) };
}

/** The draft-08 CORS rule: a credentialed answer names an allowed origin, never `*` nor a reflection of anything. */
function mercureCors(option: MercureOptions['cors']): Cors | undefined {
  return option === undefined ? undefined : resolveCors(corsOption(option));
}

function corsOption(option: readonly string[] | '*'): CorsOption {
  return option === '*' ? { origin: true } : { origin: option, credentials: true };
}

/** CSRF: the request comes from an allowed origin, or from the hub's own (Origin, else Referer; neither: refused). */
function sameOrigin(request: SseRequest, allowed: readonly string[] | undefined): boolean {
  let origin = requestHeader(request, 'origin');
  if (origin === undefined || origin === 'null') {
    const referer = requestHeader(request, 'referer');
    if (referer === undefined) return false;
    try {
      origin = new URL(referer).origin;
    } catch {
      return false;
    }
  }
  origin = origin.toLowerCase();
  if (allowed !== undefined) return allowed.includes('*') || allowed.includes(origin);
  const host = requestHeader(request, 'host');
  try {
    return host !== undefined && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/** The `Last-Event-ID` header as the client meant it (browsers send it as UTF-8). */
function lastEventIdHeader(request: SseRequest): string | undefined {
  const value = requestHeader(request, 'last-event-id');
  if (value === undefined || !/[^\x00-\x7f]/.test(value)) return value;
  return new TextDecoder().decode(Uint8Array.from(value, (char) => char.charCodeAt(0) & 0xff));
}

function closingTime(exp: number | undefined, maxLifetime: number | undefined): number | undefined {
  const byLifetime = maxLifetime === undefined ? undefined : Math.ceil((Date.now() + maxLifetime) / 1000);
  if (exp === undefined) return byLifetime;
  return byLifetime === undefined ? exp : Math.min(exp, byLifetime);
}

function isPreflightFor(request: SseRequest, method: string): boolean {
  return requestHeader(request, 'access-control-request-method')?.toUpperCase() === method;
}

function pathname(url: string): string {
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

/** RFC 6750's answer to a malformed request. */
function invalidRequest(problem: string): Answer {
  return text(400, problem, { 'www-authenticate': 'Bearer error="invalid_request"' });
}

function notAllowed(allowed: string): Answer {
  return text(405, `this method is not allowed here; use ${allowed}`, { allow: `${allowed}, OPTIONS` });
}

function answerOf(answer: Answer): ConnectResult {
  return { status: answer.status, headers: answer.headers, body: answer.body };
}

function checkUrl(url: string): void {
  try {
    new URL(url);
  } catch {
    throw optionError('url', 'an absolute URL such as https://hub.example.com/.well-known/mercure', url);
  }
}

function optionError(name: string, expected: string, value: unknown): TypeError {
  return new TypeError(`serve-sse: mercureHandler option ${name} must be ${expected}; got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
}
