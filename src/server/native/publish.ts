/**
 * `POST /publish`: the publisher's side. In order: CORS (the same allow-list as `/events`), a
 * publisher token (401), the body (415, 413, 408, 400), the token's topics (403), then the hub.
 * Answers 200 with the event's id as the whole text body.
 *
 * At shutdown, a publication the hub has not been handed yet is refused with 503 (publish to
 * another instance), after its body is read; one already handed over gets its answer. Every
 * answer during the drain closes the connection, so no keep-alive connection is left for the
 * publisher to send on as the server closes it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger as PinoLogger } from 'pino';
import type { Cors } from '../../cors.js';
import type { Hub } from '../../index.js';
import { bearerToken, checkTopics, type Refusal, type TokenVerifier } from './auth.js';
import { clientAddress } from '../http/limits.js';
import { discardBody, readPublication } from './publish-body.js';
import { errorKind, type RepeatedLog } from '../http/repeated-log.js';
import { respond } from '../http/respond.js';

export interface PublishOptions {
  hub: Hub;
  /** Undefined: publishing is refused. */
  verifier: TokenVerifier | undefined;
  cors: Cors | undefined;
  maxBody: number;
  /** Milliseconds a body may take after its head. */
  bodyTimeout: number;
  trustProxy: boolean;
  log: PinoLogger;
  /** Where failures the hub reports go: one line at once, then at most one per interval. */
  errors: RepeatedLog;
  closing(): boolean;
}

export type PublishHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function createPublishHandler(options: PublishOptions): PublishHandler {
  const { hub, verifier, cors, log, errors } = options;
  const DRAINING = 'the hub is shutting down; publish to another instance';

  return async (req, res) => {
    const limits = { maxBody: options.maxBody, bodyTimeout: options.bodyTimeout, since: Date.now() };
    const verdict = cors?.check(req);
    if (verdict?.kind === 'answer') {
      // A refused origin, or a preflight (the check was made for POST).
      if (verdict.body === undefined) res.writeHead(verdict.status, verdict.headers).end();
      else respond(res, verdict.status, verdict.body, verdict.headers);
      return;
    }
    const corsHeaders = verdict?.headers ?? {};
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...corsHeaders, allow: 'POST, OPTIONS' }).end();
      return;
    }
    // Decided when the answer is written: a request that began before the shutdown may end after.
    const closeWhenDraining = (): Record<string, string> => (options.closing() ? { connection: 'close' } : {});
    const refuse = (status: number, message: string, headers: Record<string, string> = {}): void =>
      respond(res, status, message, { ...corsHeaders, ...closeWhenDraining(), ...headers });
    const unauthorised = ({ status, message, challenge }: Refusal): void => refuse(status, message, { 'www-authenticate': challenge });

    if (options.closing()) {
      await discardBody(req, limits);
      return refuse(503, DRAINING);
    }
    if (verifier === undefined) return refuse(403, 'publishing is disabled on this hub: start it with --publisher-key (or SERVE_SSE_PUBLISHER_KEY)');
    const checked = await verifier.verify(bearerToken(req));
    if (!checked.ok) return unauthorised(checked.refusal);

    let body;
    try {
      body = await readPublication(req, limits);
    } catch {
      return; // the client went away mid-body: nobody to answer
    }
    if (!body.ok) {
      // Past the limit or the deadline the rest of the body is not read, so the connection cannot be reused.
      return refuse(body.status, body.message, body.status === 413 || body.status === 408 ? { connection: 'close' } : {});
    }
    // The shutdown began while the body arrived: the hub is closing and takes no more.
    if (options.closing()) return refuse(503, DRAINING);
    const { topics, event, data } = body.publication;
    const denied = checkTopics(checked.grant, topics, 'publish');
    if (denied !== undefined) return unauthorised(denied);

    let id: string;
    try {
      id = await hub.publish(topics, event === undefined ? { data } : { event, data });
    } catch (error) {
      if (error instanceof TypeError) return refuse(400, `the event cannot be published: ${error.message}`);
      // The hub closed between the check above and the publication: the shutdown's answer.
      if (options.closing()) return refuse(503, DRAINING);
      errors.report(`publish failed ${errorKind(error)}`, { err: error, topics }, 'publish failed');
      return refuse(503, `the hub could not publish the event: ${(error as Error).message}`);
    }
    log.debug({ id, topics, event, ip: clientAddress(req, options.trustProxy) }, 'published');
    res.writeHead(200, { ...corsHeaders, ...closeWhenDraining(), 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(id);
  };
}
