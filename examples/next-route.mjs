// A Next.js app-router route handler: save as app/api/events/route.js. Next calls GET with the
// Fetch Request and streams the Response it returns; no adapter is needed.
import { setTimeout as sleep } from 'node:timers/promises';
import { serveSse } from 'serve-sse';

const prices = serveSse(async function* (request, stream) {
  const symbol = new URL(request.url).searchParams.get('symbol') ?? 'ACME';
  for (let n = 1; n <= 5; n++) {
    yield { event: 'price', id: n, data: { symbol, value: 40 + n } };
    // Rejects when the client leaves, which ends the stream quietly.
    await sleep(1000, undefined, { signal: stream.signal });
  }
});

export const GET = (request) => prices.fetch(request);

// Never prerender or cache this route: every request is a live stream.
export const dynamic = 'force-dynamic';
