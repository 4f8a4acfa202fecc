// Fastify: hooks run first, then fastifySse hands the request to the handler. Problems are logged
// by Fastify's own logger (pino), with the request id. Run: node examples/fastify.mjs
import Fastify from 'fastify';
import { serveSse } from 'serve-sse';
import { fastifyRequestOf, fastifySse } from 'serve-sse/fastify';

const app = Fastify({ logger: { level: 'warn' } });
app.decorateRequest('user', null);
// Authentication goes in a hook, as for any route; here anyone may listen, under a name.
app.addHook('preHandler', async (request) => {
  request.user = request.query.name ?? 'guest';
});

const greetings = serveSse(async function* (request) {
  const { user } = fastifyRequestOf(request);
  for (let count = 1; count <= 3; count++) {
    yield { event: 'greeting', id: count, data: `hello ${user}, #${count}` };
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
});
app.get('/events', fastifySse(greetings));

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? 'localhost' });
console.log(`listening on ${address}/events?name=ada`);
