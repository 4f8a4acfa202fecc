/**
 * One connection for every instance of a browser profile that opens the same stream. The
 * instances of one URL form a group: the one holding a Web Lock named after it holds the
 * connection and posts what it reads on a `BroadcastChannel`; the others dispatch what it posts.
 * When the holder goes (its page closed or frozen, or `close()`), the lock passes to the next
 * instance, which resumes from the last id it dispatched: the same as every other member's,
 * because it first handles every message the old holder posted (a barrier: a message it posts to
 * itself comes after them), so nothing is lost and nothing arrives twice.
 */
import { Connection, type ConnectionSettings, type Sink } from './connection.js';
import type { Dispatch } from './parse.js';

/** A member of a group: the source, which also decides how to connect when it holds the lock. */
export interface Member extends Sink {
  /** The instance has just joined and heard the holder's state: where the stream stands. */
  synced(lastEventId: string, retry: number, origin: string | undefined): void;
  settings(): ConnectionSettings;
}

type Message =
  | { t: 'open'; origin: string }
  | { t: 'event'; event: Dispatch; origin: string }
  | { t: 'retry'; ms: number }
  | { t: 'fail'; status: number | undefined; final: boolean }
  | { t: 'hello' }
  | { t: 'state'; id: string; retry: number; origin: string | undefined }
  | { t: 'barrier'; nonce: string };

/**
 * Joins the group of `key`, or returns undefined where Web Locks or BroadcastChannel are missing
 * (Node, an old browser): the caller then connects on its own. The function returned leaves.
 */
export function share(key: string, member: Member): (() => void) | undefined {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  if (locks === undefined || typeof BroadcastChannel !== 'function') return undefined;
  const channel = new BroadcastChannel(key);
  const post = (message: Message): void => channel.postMessage(message);
  let leading = false;
  let left = false;
  let origin: string | undefined;
  let connection: Connection | undefined;
  let quit: AbortController | undefined;
  let release: (() => void) | undefined;
  let barrier: { nonce: string; passed(): void } | undefined;

  // As the holder: what the connection reads goes to this instance, then to the others.
  const relay: Sink = {
    get lastEventId() {
      return member.lastEventId;
    },
    opened(at) {
      origin = at;
      member.opened(at);
      post({ t: 'open', origin: at });
    },
    dispatched(event, at) {
      member.dispatched(event, at);
      post({ t: 'event', event, origin: at });
    },
    retried(ms) {
      member.retried(ms);
      post({ t: 'retry', ms });
    },
    failed(status, final) {
      // Not open any more: an instance that joins now waits for the next `open`.
      origin = undefined;
      post({ t: 'fail', status, final });
      member.failed(status, final);
    },
  };

  channel.onmessage = ({ data }: MessageEvent<Message>) => {
    if (data.t === 'barrier') {
      if (data.nonce === barrier?.nonce) barrier.passed();
      return;
    }
    if (leading) {
      if (data.t === 'hello') post({ t: 'state', id: member.lastEventId, retry: connection?.retry ?? member.settings().retry, origin });
      return;
    }
    if (data.t === 'state') member.synced(data.id, data.retry, data.origin);
    else if (data.t === 'open') member.opened((origin = data.origin));
    else if (data.t === 'event') member.dispatched(data.event, data.origin);
    else if (data.t === 'retry') member.retried(data.ms);
    else if (data.t === 'fail') member.failed(data.status, data.final);
  };

  function contend(): void {
    quit = new AbortController();
    locks!
      .request(key, { signal: quit.signal }, async () => {
        // Everything the last holder posted is handled before this instance picks up from it.
        await new Promise<void>((passed) => {
          barrier = { nonce: `${Math.random()}`, passed };
          const probe = new BroadcastChannel(key);
          probe.postMessage({ t: 'barrier', nonce: barrier.nonce } satisfies Message);
          probe.close();
        });
        if (left) return;
        leading = true;
        connection = new Connection(member.settings(), relay);
        await new Promise<void>((resolve) => (release = resolve));
        leading = false;
        connection.stop();
        connection = undefined;
      })
      .catch(() => {});
  }

  /** Hands the connection over (or gives up waiting for it). */
  function step(): void {
    quit?.abort();
    release?.();
    release = undefined;
  }

  // A frozen page runs nothing: it hands the connection over, and queues for it again on resume.
  const doc = (globalThis as { document?: Document }).document;
  const onFreeze = (): void => step();
  const onResume = (): void => contend();
  doc?.addEventListener('freeze', onFreeze);
  doc?.addEventListener('resume', onResume);

  post({ t: 'hello' });
  contend();
  return () => {
    left = true;
    doc?.removeEventListener('freeze', onFreeze);
    doc?.removeEventListener('resume', onResume);
    step();
    channel.close();
  };
}
