/**
 * Compile-time checks of the shared event map: `npm run typecheck` (part of `npm test`) fails if
 * a typed hub or client accepts what it must refuse (each `@ts-expect-error` must be an error) or
 * refuses what it must accept. Never run: the function below is not called.
 */
import { createHub } from '../../src/index.js';
import { EventSource } from '../../src/client/index.js';

export function typedUse(): void {
  type Events = { price: { symbol: string; cents: number }; message: string };
  const hub = createHub<Events>({ json: true });
  void hub.publish('t', { event: 'price', data: { symbol: 'X', cents: 1 } });
  void hub.publish('t', { data: 'hello' });
  // @ts-expect-error wrong payload
  void hub.publish('t', { event: 'price', data: { symbol: 'X' } });
  // @ts-expect-error unknown type
  void hub.publish('t', { event: 'nope', data: 1 });
  // @ts-expect-error json required for a typed hub
  createHub<Events>({});
  const es = new EventSource<Events>('http://x/', { json: true });
  es.addEventListener('price', (event) => { const c: number = event.data.cents; void c; });
  es.onmessage = (event) => { const s: string = event.data; void s; };
  // @ts-expect-error json required for typed events
  new EventSource<Events>('http://x/');
  const plain = new EventSource('http://x/');
  plain.addEventListener('anything', (event) => { const s: string = event.data; void s; });
  plain.onerror = (event) => { const st: number | undefined = event.status; void st; };
}
