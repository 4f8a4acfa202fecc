import { hub } from '../../lib/hub.js';

export const GET = () => Response.json(hub.stats());
export const dynamic = 'force-dynamic';
export const runtime = 'nodejs';
