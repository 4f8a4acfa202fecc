/**
 * The requests in flight, per connection: when each is over (for the bookkeeping that must be
 * undone exactly once), whether an answer has started on a connection (nothing may be written
 * into it then), and when the last request or connection arrived (for the drain at shutdown).
 *
 * "Over" is: the response closed, or its connection did. Node emits 'close' on a response only
 * once it has had the connection: a response queued behind another on a keep-alive connection
 * (pipelining) never gets it if the client hangs up first, and would never be counted as over.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly onDone: Array<() => void>;
  over: boolean;
}

export interface TrackedExchange {
  /** Runs `callback` once, when the exchange is over (at once if it is already). */
  onDone(callback: () => void): void;
}

export class Exchanges {
  /** The exchanges not over yet, by connection; a connection's set lives as long as it does. */
  readonly #open = new WeakMap<Socket, Set<Exchange>>();
  #lastArrival = 0;

  /** A connection was accepted: a request may be on its way, so the drain waits for it too. */
  connected(): void {
    this.#lastArrival = Date.now();
  }

  /** Tracks a request from the moment the server hands it over. */
  begin(req: IncomingMessage, res: ServerResponse): TrackedExchange {
    this.#lastArrival = Date.now();
    const exchange: Exchange = { req, res, onDone: [], over: false };
    const socket = req.socket;
    let open = this.#open.get(socket);
    if (open === undefined) {
      open = new Set();
      this.#open.set(socket, open);
      // One listener per connection, whatever number of requests it carries: it ends the
      // exchanges whose response never got the connection.
      const set = open;
      socket.once('close', () => {
        for (const queued of [...set]) finish(set, queued);
      });
    }
    const set = open;
    if (socket.destroyed) {
      // Already gone (the 'close' above will not come again): over at once.
      queueMicrotask(() => finish(set, exchange));
    }
    set.add(exchange);
    res.once('close', () => finish(set, exchange));
    return {
      onDone(callback) {
        if (exchange.over) callback();
        else exchange.onDone.push(callback);
      },
    };
  }

  /**
   * Whether an answer on `socket` has begun and not finished: writing anything else into the
   * connection now would corrupt it (the middle of an event stream, say).
   */
  answerStarted(socket: Socket): boolean {
    for (const { res } of this.#open.get(socket) ?? []) {
      if (res.socket === socket && res.headersSent && !res.writableFinished) return true;
    }
    return false;
  }

  /** Whether a request on `socket` has its head and is still waiting for the rest of its body. */
  bodyArriving(socket: Socket): boolean {
    for (const { req } of this.#open.get(socket) ?? []) if (!req.complete) return true;
    return false;
  }

  /**
   * Resolves once no request or connection has arrived for `quietMs`, or after `withinMs` at the
   * latest.
   */
  async quiet(quietMs: number, withinMs: number): Promise<void> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const now = Date.now();
      const wait = Math.min(this.#lastArrival + quietMs - now, deadline - now);
      if (wait <= 0) return;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

function finish(set: Set<Exchange>, exchange: Exchange): void {
  if (exchange.over) return;
  exchange.over = true;
  set.delete(exchange);
  for (const callback of exchange.onDone.splice(0)) callback();
}
