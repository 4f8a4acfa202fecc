/**
 * share.ts (one connection per browser profile) in Node, against a real hub, with Web Locks and
 * BroadcastChannel replaced by fakes whose delivery the test holds and releases. Chromium
 * (tests/client/browser.test.ts) shows the group working in a real browser, but it cannot show
 * the hand-over's barrier at work: Chromium grants the lock only after the messages already
 * delivered to a page, so the race the barrier closes never opens there. Here it does: the old
 * holder's last events are still in transit when the lock passes.
 *
 * The fakes keep the semantics share.ts relies on: a lock is granted to the requests in the order
 * they were made, and held until the callback's promise settles; an aborted request leaves the
 * queue. A message goes to every other open channel of the name (never back to its sender), as a
 * structured clone, one task after another, in the order posted.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventSource } from '../../src/client/index.js';
import { createHub } from '../../src/index.js';
import { listen, waitFor, type Running } from '../helpers.js';

/** Web Locks, exclusive mode only (all share.ts asks for). */
class FakeLocks {
  readonly #queues = new Map<string, Array<{ grant: () => void; signal?: AbortSignal }>>();
  readonly #held = new Set<string>();

  request(name: string, options: { signal?: AbortSignal }, callback: () => Promise<unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const queue = this.#queues.get(name) ?? [];
      this.#queues.set(name, queue);
      const entry = {
        signal: options.signal,
        grant: () => {
          this.#held.add(name);
          void Promise.resolve()
            .then(callback)
            .then(resolve, reject)
            .finally(() => {
              this.#held.delete(name);
              this.#next(name);
            });
        },
      };
      options.signal?.addEventListener('abort', () => {
        const at = queue.indexOf(entry);
        if (at === -1) return; // granted already: aborting changes nothing
        queue.splice(at, 1);
        reject(new DOMException('aborted', 'AbortError'));
      });
      queue.push(entry);
      this.#next(name);
    });
  }

  #next(name: string): void {
    if (this.#held.has(name)) return;
    this.#queues.get(name)?.shift()?.grant();
  }
}

/** BroadcastChannel, with every delivery held while `FakeChannel.hold` is true. */
class FakeChannel {
  static hold = false;
  static readonly #open = new Set<FakeChannel>();
  static readonly #transit: Array<() => void> = [];
  static #pumping = false;

  onmessage: ((event: { data: unknown }) => void) | null = null;
  #closed = false;

  constructor(readonly name: string) {
    FakeChannel.#open.add(this);
  }

  postMessage(message: unknown): void {
    for (const to of FakeChannel.#open) {
      if (to === this || to.name !== this.name) continue;
      const data = structuredClone(message);
      FakeChannel.#transit.push(() => {
        if (!to.#closed) to.onmessage?.({ data });
      });
    }
    FakeChannel.pump();
  }

  close(): void {
    this.#closed = true;
    FakeChannel.#open.delete(this);
  }

  /** Delivers what is in transit, a task per message, until `hold` is set again. */
  static pump(): void {
    if (FakeChannel.#pumping) return;
    FakeChannel.#pumping = true;
    const step = (): void => {
      const deliver = FakeChannel.hold ? undefined : FakeChannel.#transit.shift();
      if (deliver === undefined) {
        FakeChannel.#pumping = false;
        return;
      }
      deliver();
      setImmediate(step);
    };
    setImmediate(step);
  }

  static get inTransit(): number {
    return FakeChannel.#transit.length;
  }
}

const hub = createHub();
let running: Running;
const saved = { navigator: Object.getOwnPropertyDescriptor(globalThis, 'navigator'), channel: globalThis.BroadcastChannel };

before(async () => {
  running = await listen(hub.handler({ keepAlive: false }));
  Object.defineProperty(globalThis, 'navigator', { value: { locks: new FakeLocks() }, configurable: true, writable: true });
  globalThis.BroadcastChannel = FakeChannel as unknown as typeof BroadcastChannel;
});

after(async () => {
  if (saved.navigator === undefined) delete (globalThis as { navigator?: unknown }).navigator;
  else Object.defineProperty(globalThis, 'navigator', saved.navigator);
  globalThis.BroadcastChannel = saved.channel;
  await hub.close({ timeout: 1000 });
  await running.close();
});

/** An instance of the group, and the data of every message it dispatched, in order. */
function member(url: string): { source: EventSource; got: string[] } {
  const source = new EventSource(url, { retry: 50, maxRetry: 400 });
  const got: string[] = [];
  source.onmessage = (event) => void got.push(event.data as string);
  return { source, got };
}

test('the lock passes while the old holder’s last events are in transit: the new holder resumes after them, and no member gets one twice or misses one', async () => {
  const url = `${running.url}/events?topic=shared`;
  const a = member(url);
  await waitFor(() => a.source.readyState === EventSource.OPEN && hub.stats().connections === 1, 5000, 'the first instance to connect');
  const b = member(url);
  const c = member(url);
  await waitFor(() => b.source.readyState === EventSource.OPEN && c.source.readyState === EventSource.OPEN, 5000, 'the others to join');
  assert.equal(hub.stats().connections, 1, 'one connection for the group');

  await hub.publish('shared', { data: 'e1' });
  await hub.publish('shared', { data: 'e2' });
  await waitFor(() => b.got.length === 2 && c.got.length === 2, 5000, 'e1 and e2 everywhere');

  // The holder reads three more and posts them; none reaches the others yet.
  FakeChannel.hold = true;
  for (const data of ['e3', 'e4', 'e5']) await hub.publish('shared', { data });
  await waitFor(() => a.got.length === 5, 5000, 'the holder to read e3-e5');
  assert.equal(FakeChannel.inTransit, 6, 'e3-e5 on their way to both others');

  // It goes: the lock passes to the next in line while e3-e5 are still in transit, and they
  // arrive a moment later (as a busy page would handle them).
  a.source.close();
  setTimeout(() => {
    FakeChannel.hold = false;
    FakeChannel.pump();
  }, 20);
  await waitFor(() => hub.stats().connections === 1 && FakeChannel.inTransit === 0 && !FakeChannel.hold, 5000, 'the new holder to connect');
  // Long enough for a replay from a resume point before e3 to arrive and be relayed.
  await new Promise((resolve) => setTimeout(resolve, 200));

  await hub.publish('shared', { data: 'e6' });
  await waitFor(() => b.got.includes('e6') && c.got.includes('e6'), 5000, 'e6 everywhere');
  await new Promise((resolve) => setTimeout(resolve, 50));
  const all = ['e1', 'e2', 'e3', 'e4', 'e5', 'e6'];
  assert.deepEqual(b.got, all, 'the new holder');
  assert.deepEqual(c.got, all, 'the member that stayed');
  assert.equal(b.source.lastEventId, c.source.lastEventId);
  b.source.close();
  c.source.close();
});
