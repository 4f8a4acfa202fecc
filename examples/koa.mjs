// Koa: koaSse ends the middleware chain; what runs before it (sessions, auth, ctx.set headers)
// still applies. Run: node examples/koa.mjs
import Koa from 'koa';
import { serveSse } from 'serve-sse';
import { koaContextOf, koaSse } from 'serve-sse/koa';

const app = new Koa();
app.use(async (ctx, next) => {
  if (ctx.path !== '/events') return (ctx.body = 'Listen at /events');
  ctx.state.user = ctx.cookies.get('user') ?? 'guest';
  ctx.set('X-Served-By', 'koa');
  await next();
});
app.use(
  koaSse(
    serveSse(async (request, stream) => {
      const { user } = koaContextOf(request).state;
      await stream.send({ event: 'welcome', data: { user } });
      // Keep the stream open until the client leaves.
      await new Promise((resolve) => stream.signal.addEventListener('abort', resolve));
    }),
  ),
);

const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST, () => {
  console.log(`listening on http://${process.env.HOST ?? 'localhost'}:${server.address().port}/events`);
});
