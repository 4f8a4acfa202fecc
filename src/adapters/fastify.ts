/**
 * Fastify: `app.get('/events', fastifySse(handler))`. The route runs after Fastify's hooks
 * (onRequest, preHandler: authentication, rate limits), then hands the raw request and response
 * to the handler, which answers everything itself: the stream, or `onConnect`'s refusal.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { FastifyRequest } from 'fastify';
import type { Logger } from '../logger.js';
import type { SseHandler } from '../serve.js';
import type { SseRequest } from '../stream.js';
import { checkHandler, serveNodeRequest } from './node-entry.js';

/** What the route needs of Fastify's request: any `FastifyRequest` fits, HTTP/2 included. */
export interface FastifySseRequest {
  readonly raw: IncomingMessage | Http2ServerRequest;
  readonly log: Logger;
}

/** What the route needs of Fastify's reply: any `FastifyReply` fits. */
export interface FastifySseReply {
  readonly raw: ServerResponse | Http2ServerResponse;
  getHeaders(): Record<string, number | string | string[] | undefined>;
  hijack(): unknown;
}

export type FastifySseRoute = (request: FastifySseRequest, reply: FastifySseReply) => Promise<void>;

/** Each raw request's FastifyRequest, for the app's writer and onConnect; gone with the request. */
const fastifyRequests = new WeakMap<object, FastifySseRequest>();

/**
 * A Fastify route handler serving `handler` (from `serveSse()` or `hub.handler()`). The reply is
 * hijacked: Fastify stops managing it, so no onSend hook (compression) holds the stream back.
 * Headers that hooks set with `reply.header()` are kept. Problems are logged to the request's
 * logger (`request.log`, pino) unless the handler was given a `logger`.
 * @throws TypeError when `handler` is not a handler.
 */
export function fastifySse(handler: SseHandler<IncomingMessage | Http2ServerRequest>): FastifySseRoute {
  checkHandler(handler, 'fastifySse(handler)');
  return (request, reply) => {
    fastifyRequests.set(request.raw, request);
    // After hijack() Fastify writes nothing, so what hooks set (CORS, request ids) goes on the raw
    // response, where the stream's own headers are merged over it.
    const res = reply.raw;
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value !== undefined) res.setHeader(name, value);
    }
    reply.hijack();
    return serveNodeRequest(handler, request.raw, res, undefined, { logger: request.log });
  };
}

/**
 * The `FastifyRequest` behind the request a writer or `onConnect` receives (that one is Node's
 * raw request): where hooks put `request.user` and the like (declared on `FastifyRequest`).
 * @throws TypeError for a request that did not come through `fastifySse`: a handler mounted
 * elsewhere too must not read Fastify's request where there is none.
 */
export function fastifyRequestOf(request: SseRequest): FastifyRequest {
  const fastifyRequest = fastifyRequests.get(request);
  if (fastifyRequest === undefined) throw new TypeError('serve-sse/fastify: fastifyRequestOf(request) got a request that did not come through fastifySse');
  return fastifyRequest as FastifyRequest;
}
