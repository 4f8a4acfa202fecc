/** A Map with a cap on its size, for the compiled-selector and per-selector result caches. */

/**
 * At most `capacity` entries; when full, adding one evicts the oldest. With `refreshOnRead` (the
 * default) a read moves an entry to the back of the Map's insertion order, so the oldest is the
 * least recently used; without it, the least recently added (one Map lookup per read, for the hot
 * path).
 */
export class BoundedCache<K, V> {
  readonly #entries = new Map<K, V>();

  constructor(
    readonly capacity: number,
    private readonly refreshOnRead = true,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, not ${capacity}`);
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined && this.refreshOnRead) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, value);
  }

  clear(): void {
    this.#entries.clear();
  }
}
