// One hub for the whole app, kept on globalThis. Under `next start` the routes share this module
// as it is, but under `next dev` an edit re-evaluates it (once per route that imports it): a plain
// `export const hub = createHub()` would then leave open streams on the old hub while /publish
// publishes on a new one. On globalThis, every route, before and after a reload, gets the same
// hub (so a change to its options needs a restart of `next dev`).
import { createHub } from 'serve-sse';

const key = Symbol.for('serve-sse.next-fixture.hub');
export const hub = (globalThis[key] ??= createHub({ history: 100 }));
