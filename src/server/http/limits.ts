/** Per-client connection caps: who the client is, and how many event streams it holds. */
import type { IncomingMessage } from 'node:http';

/**
 * The client's address. Behind a reverse proxy every request comes from the proxy, so with
 * `trustProxy` the last `X-Forwarded-For` entry (the one our proxy added) is used instead: earlier
 * entries are whatever the client claimed and cannot be trusted.
 */
export function clientAddress(request: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = request.headers['x-forwarded-for'];
    const list = Array.isArray(forwarded) ? forwarded.join(',') : forwarded;
    const last = list?.split(',').pop()?.trim();
    if (last !== undefined && last !== '') return normalise(last);
  }
  return normalise(request.socket.remoteAddress ?? 'unknown');
}

/** `::ffff:10.0.0.1` and `10.0.0.1` are one client. */
function normalise(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** Counts open connections per address; a count of zero leaves no entry behind. */
export class ConnectionCap {
  readonly #open = new Map<string, number>();
  readonly #max: number;

  /** @param max connections per address; 0 for no cap. */
  constructor(max: number) {
    this.#max = max;
  }

  /** Takes a slot for `address`, or returns false if it holds its maximum already. */
  take(address: string): boolean {
    const count = this.#open.get(address) ?? 0;
    if (this.#max > 0 && count >= this.#max) return false;
    this.#open.set(address, count + 1);
    return true;
  }

  release(address: string): void {
    const count = this.#open.get(address);
    if (count === undefined) return;
    if (count <= 1) this.#open.delete(address);
    else this.#open.set(address, count - 1);
  }

  /** Addresses holding at least one connection. */
  get addresses(): number {
    return this.#open.size;
  }
}
