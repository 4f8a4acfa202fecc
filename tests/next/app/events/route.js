import { hub } from '../../lib/hub.js';

const events = hub.handler();

// GET /events?topic=a&topic=b, resuming after Last-Event-ID.
export const GET = (request) => events.fetch(request);
export const dynamic = 'force-dynamic'; // a live stream: never prerendered, never cached
export const runtime = 'nodejs';
