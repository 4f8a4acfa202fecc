import { hub } from '../../lib/hub.js';

// An app that replaces the stream's Cache-Control with one lacking `no-transform`: Next's
// compression then applies (gzip), and the test checks that events still arrive one by one.
const events = hub.handler({ onConnect: () => [200, { 'Cache-Control': 'no-cache' }] });

export const GET = (request) => events.fetch(request);
export const dynamic = 'force-dynamic';
export const runtime = 'nodejs';
