/** What every adapter does the same way: reach a handler's Node entry point. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { SERVE_NODE, type AdapterExtras, type NextFunction, type NodeEntry, type SseHandler } from '../serve.js';

/** @throws TypeError, at start-up, when `handler` is not an SSE handler. */
export function checkHandler(handler: unknown, where: string): asserts handler is SseHandler {
  if (typeof handler !== 'function') {
    throw new TypeError(`serve-sse: ${where} needs a handler from serveSse() or hub.handler(); got ${handler === null ? 'null' : typeof handler}`);
  }
}

/**
 * Serves a Node request through `handler`, with the framework's extras. Resolves once the answer
 * has started (or nobody is left to answer); never rejects.
 */
export function serveNodeRequest(
  handler: SseHandler,
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
  next: NextFunction | undefined,
  extras: AdapterExtras,
): Promise<void> {
  const entry = (handler as Partial<Record<typeof SERVE_NODE, NodeEntry>>)[SERVE_NODE];
  if (typeof entry === 'function') return entry(req, res, next, extras);
  // A function the app wrapped around a handler: it only takes the public form.
  handler(req, res, next);
  return Promise.resolve();
}
