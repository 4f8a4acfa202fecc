/**
 * Presence: who is subscribed, across every instance of a hub. A library engine, protocol-agnostic
 * (as centrifuge's PresenceManager is): a protocol records each subscription as an entry when it
 * starts and removes it when it ends; any instance lists them all; and when an instance dies
 * without removing its entries, one surviving instance hears of them once, to announce that those
 * subscriptions ended. Mercure's active subscriptions are built on it.
 *
 * {@link memoryPresence} serves one process; `redisPresence` (./redis-presence.ts) serves every
 * instance that shares a Redis key.
 */

/** One subscription. */
export interface PresenceEntry {
  /** Unique per subscription, across every instance: adding an id again replaces its entry. */
  readonly id: string;
  /** What {@link Presence.list} filters by (for Mercure, the subscription's topic selector). */
  readonly group: string;
  /**
   * A JSON document (what the protocol shows of the subscription). It is copied when added:
   * later changes to the object are not seen, and `list()` returns what JSON keeps of it.
   */
  readonly data: unknown;
}

export interface PresenceFilter {
  /** Only the entries of this group. */
  group?: string;
  /** Only the entry with this id (none, or one unless the same id was added on two instances). */
  id?: string;
}

export interface Presence {
  /**
   * Records a subscription of this instance (replacing any entry of this instance with its id).
   * Synchronous: a shared implementation writes it in the background, batched with the others.
   * @throws TypeError when `id` or `group` is not a string, or `data` is not JSON-serialisable
   */
  add(entry: PresenceEntry): void;
  /**
   * This instance's id, for a presence that several instances share (undefined for one that only
   * this instance sees): a protocol makes its subscriber ids unique across instances with it.
   */
  readonly instance?: string;
  /** Forgets a subscription of this instance; an unknown id is ignored. */
  remove(id: string): void;
  /**
   * Every live entry of every instance, or those of one group, or one entry, in no particular
   * order. This instance's own entries are always exactly the ones added and not removed; other
   * instances' are as the shared store holds them (see the implementation for how soon a change
   * shows). Rejects when the shared store cannot be read.
   */
  list(filter?: PresenceFilter): Promise<PresenceEntry[]>;
  /**
   * Called with the entries of an instance found dead (its heartbeat stopped), once, by one
   * surviving instance: a protocol publishes "ended" events for them. At most once: a reaper that
   * dies in the middle takes them along. Never called for an instance that closed.
   */
  onExpired(listener: (entries: PresenceEntry[]) => void): void;
  /**
   * Called on this instance with all its entries when it finds that it was taken for dead (cut
   * off from the shared store, or stalled, for longer than the bound) and has written them back:
   * a survivor's `onExpired` has reported those it knew ended, and a protocol publishes them all
   * as active again (those added while it was cut off included). Also called when the shared
   * keys were deleted under a live instance (then nobody reported them ended). Never called by
   * {@link memoryPresence}.
   */
  onRestored(listener: (entries: PresenceEntry[]) => void): void;
  /** Stops heartbeats and removes this instance's entries (a graceful stop is not a death). */
  close(): Promise<void>;
}

/**
 * Checks an entry and copies it as JSON keeps it (what a shared store would give back).
 * @throws TypeError for anything that is not an entry
 * @internal shared by the implementations
 */
export function snapshot(entry: PresenceEntry): { entry: PresenceEntry; json: string } {
  if (entry === null || typeof entry !== 'object') throw new TypeError(`serve-sse: a presence entry must be an object; got ${entry === null ? 'null' : typeof entry}`);
  const { id, group, data } = entry;
  if (typeof id !== 'string' || id === '') throw new TypeError(`serve-sse: a presence entry's id must be a non-empty string; got ${typeof id}`);
  if (typeof group !== 'string') throw new TypeError(`serve-sse: a presence entry's group must be a string; got ${typeof group}`);
  let json: string;
  try {
    json = JSON.stringify({ id, group, data: data ?? null });
  } catch (error) {
    throw new TypeError(`serve-sse: the data of presence entry ${JSON.stringify(id)} is not JSON-serialisable: ${(error as Error).message}`);
  }
  return { entry: JSON.parse(json) as PresenceEntry, json };
}

/**
 * An entry as read back from a store that other programs may write to, or why it is not one.
 * @internal shared by the implementations
 */
export function parseEntry(json: unknown): PresenceEntry | undefined {
  if (typeof json !== 'string') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const { id, group, data } = value as Record<string, unknown>;
  if (typeof id !== 'string' || id === '' || typeof group !== 'string') return undefined;
  return { id, group, data: data ?? null };
}

/** Whether `entry` passes `filter`. @internal */
export function matches(entry: PresenceEntry, filter: PresenceFilter | undefined): boolean {
  return (filter?.group === undefined || entry.group === filter.group) && (filter?.id === undefined || entry.id === filter.id);
}

/** Why `list(filter)` cannot answer, if it cannot: a bad filter, or a closed presence. @internal */
export function listRefusal(filter: PresenceFilter | undefined, closed: boolean): Error | undefined {
  try {
    checkFilter(filter);
  } catch (error) {
    return error as Error;
  }
  return closed ? new Error('serve-sse: this presence is closed') : undefined;
}

/** Checks a filter. @throws TypeError @internal */
export function checkFilter(filter: PresenceFilter | undefined): void {
  if (filter === undefined) return;
  if (filter === null || typeof filter !== 'object') throw new TypeError(`serve-sse: a presence filter must be an object; got ${filter === null ? 'null' : typeof filter}`);
  for (const name of ['group', 'id'] as const) {
    if (filter[name] !== undefined && typeof filter[name] !== 'string') throw new TypeError(`serve-sse: presence filter ${name} must be a string; got ${typeof filter[name]}`);
  }
}

/**
 * Presence in this process: the entries of a single instance, which are all there are. No
 * instance can die while another survives, so `onExpired` listeners are never called.
 */
export function memoryPresence(): Presence {
  const entries = new Map<string, PresenceEntry>();
  let closed = false;
  return {
    add(entry) {
      const copy = snapshot(entry).entry;
      if (!closed) entries.set(copy.id, copy);
    },
    remove(id) {
      entries.delete(id);
    },
    list(filter) {
      const refused = listRefusal(filter, closed);
      if (refused !== undefined) return Promise.reject(refused);
      if (filter?.id !== undefined) {
        const entry = entries.get(filter.id);
        return Promise.resolve(entry !== undefined && matches(entry, filter) ? [entry] : []);
      }
      return Promise.resolve([...entries.values()].filter((entry) => matches(entry, filter)));
    },
    onExpired() {},
    onRestored() {},
    close() {
      closed = true;
      entries.clear();
      return Promise.resolve();
    },
  };
}
