/**
 * Verdicts on tokens, remembered until the token expires: a publisher reuses its token for many
 * requests, and a signature check through WebCrypto costs far more than the rest of a publish.
 * Bounded both in entries and in the characters of the tokens it holds (tokens are its keys),
 * oldest forgotten first. Nothing here is Mercure's: the native protocol's verifier could use it.
 */

/** Most tokens remembered per verifier. */
export const TOKEN_CACHE_ENTRIES = 10_000;
/** Most characters of tokens remembered per verifier (tokens are one byte per character). */
export const TOKEN_CACHE_CHARS = 8 * 1024 * 1024;

interface Entry<T> {
  readonly value: T;
  /** Milliseconds since the epoch after which the entry is stale. */
  readonly until: number;
}

export class TokenCache<T> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #maxEntries: number;
  readonly #maxChars: number;
  #chars = 0;

  constructor(maxEntries = TOKEN_CACHE_ENTRIES, maxChars = TOKEN_CACHE_CHARS) {
    this.#maxEntries = maxEntries;
    this.#maxChars = maxChars;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value kept for `token`, if it is still fresh at `now`. */
  get(token: string, now = Date.now()): T | undefined {
    const entry = this.#entries.get(token);
    if (entry === undefined) return undefined;
    if (entry.until > now) return entry.value;
    this.#delete(token);
    return undefined;
  }

  /** Keeps `value` for `token` until `until` (ms since the epoch; Infinity: until forgotten for room). */
  set(token: string, value: T, until: number): void {
    if (token.length > this.#maxChars || !(until > Date.now())) return;
    this.#delete(token);
    while (this.#entries.size >= this.#maxEntries || this.#chars + token.length > this.#maxChars) {
      this.#delete(this.#entries.keys().next().value as string);
    }
    this.#entries.set(token, { value, until });
    this.#chars += token.length;
  }

  clear(): void {
    this.#entries.clear();
    this.#chars = 0;
  }

  #delete(token: string): void {
    if (this.#entries.delete(token)) this.#chars -= token.length;
  }
}
