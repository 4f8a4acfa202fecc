import { hub } from '../../lib/hub.js';

// POST /publish?topic=a with the event's data as the body; answers with the event's id
// and when it was published (ms since the epoch).
export async function POST(request) {
  const topic = new URL(request.url).searchParams.get('topic');
  if (!topic) return new Response('topic is required\n', { status: 400 });
  const data = await request.text();
  const publishedAt = performance.timeOrigin + performance.now(); // for the test's delay figure
  const id = await hub.publish(topic, { event: 'message', data });
  return Response.json({ id, publishedAt });
}
export const dynamic = 'force-dynamic';
export const runtime = 'nodejs';
