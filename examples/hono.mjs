// Hono on Node (@hono/node-server): no adapter, the route returns handler.fetch's Response. The
// same route works unchanged on Bun and Deno. Run: node examples/hono.mjs
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { serveSse } from 'serve-sse';

const countdown = serveSse(async function* () {
  for (let left = 10; left >= 0; left--) {
    yield { event: 'countdown', id: left, data: left };
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
});

const app = new Hono();
app.get('/events', (c) => countdown.fetch(c.req.raw));

const host = process.env.HOST ?? 'localhost';
serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: host }, ({ port }) => {
  console.log(`listening on http://${host}:${port}/events`);
});
