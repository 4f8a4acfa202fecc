import type { IncomingHttpHeaders } from 'node:http';
import type { SseRequest } from './stream.js';

/**
 * One request header, whichever kind of request it is; the first, if repeated. Duck-typed rather
 * than `instanceof Request`: adapters (such as @hono/node-server) bring their own Request classes.
 */
export function requestHeader(request: SseRequest, name: string): string | undefined {
  const { headers } = request;
  const value = typeof headers.get === 'function' ? (headers as Headers).get(name) : (headers as IncomingHttpHeaders)[name];
  return (Array.isArray(value) ? value[0] : value) ?? undefined;
}
