/**
 * Koa: `app.use(koaSse(handler))`, or a router's `router.get('/events', koaSse(handler))`. The
 * middleware ends the chain: upstream middleware (authentication, headers set with `ctx.set`) runs
 * first, and nothing downstream runs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DefaultState, ParameterizedContext } from 'koa';
import type { SseHandler } from '../serve.js';
import type { SseRequest } from '../stream.js';
import { checkHandler, serveNodeRequest } from './node-entry.js';

/** What the middleware needs of Koa's context: any Koa context fits. */
export interface KoaSseContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  respond?: boolean;
}

export type KoaSseMiddleware = (ctx: KoaSseContext, next: () => Promise<unknown>) => Promise<void>;

/** Each raw request's Koa context, for the app's writer and onConnect; gone with the request. */
const koaContexts = new WeakMap<object, KoaSseContext>();

/**
 * A Koa middleware serving `handler` (from `serveSse()` or `hub.handler()`). Its promise settles
 * once the answer has started, so upstream middleware that awaits `next()` (loggers, timers) sees
 * the final status. An answer Koa cannot give (a response whose headers were already sent) is
 * thrown, to reach Koa's error handling.
 * @throws TypeError when `handler` is not a handler.
 */
export function koaSse(handler: SseHandler<IncomingMessage>): KoaSseMiddleware {
  checkHandler(handler, 'koaSse(handler)');
  return async (ctx) => {
    koaContexts.set(ctx.req, ctx);
    // The handler answers on the raw response, for good: Koa must not answer again (a 404, since
    // no body is set) once the middleware chain settles.
    ctx.respond = false;
    let failure: { error: unknown } | undefined;
    await serveNodeRequest(handler, ctx.req, ctx.res, (error) => (failure = { error }), {});
    if (failure !== undefined) {
      // With respond off, Koa will not end the response: the client must not wait forever.
      ctx.res.end();
      throw failure.error;
    }
  };
}

/**
 * The Koa context behind the request a writer or `onConnect` receives (Node's raw request): where
 * upstream middleware put `ctx.state.user` and the like. `State` types `ctx.state` (Koa's own
 * default: anything).
 * @throws TypeError for a request that did not come through `koaSse`.
 */
export function koaContextOf<State = DefaultState>(request: SseRequest): ParameterizedContext<State> {
  const ctx = koaContexts.get(request);
  if (ctx === undefined) throw new TypeError('serve-sse/koa: koaContextOf(request) got a request that did not come through koaSse');
  return ctx as ParameterizedContext<State>;
}
