/**
 * `serve-sse/mercure`: the Mercure protocol (draft-07 and draft-08) over a serve-sse hub, in any
 * Node or Fetch-API app. Needs `jose` (tokens), `urlpattern-polyfill` and `re2js` (selectors):
 * optional peer dependencies, loaded only by this subpath.
 */
export { mercureHandler, type MercureOptions } from './handler.js';
export type { MercureKeyOptions } from './auth.js';
export { memoryPresence, type Presence, type PresenceEntry } from '../../backplanes/presence.js';
