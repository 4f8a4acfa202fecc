import type { Sink, SinkOwner } from './sink.js';

/**
 * What serve-sse needs of a Node response. `http.ServerResponse` and the HTTP/2 compatibility
 * `Http2ServerResponse` both fit, and so do the Express and Connect responses built on them.
 */
export interface NodeResponse {
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableLength: number;
  readonly destroyed?: boolean;
  /** HTTP/1: the connection. */
  readonly socket?: { readonly destroyed: boolean } | null;
  /** HTTP/2 compat: the stream. */
  readonly stream?: { readonly destroyed: boolean };
  writeHead(status: number, headers?: Record<string, string>): unknown;
  write(chunk: string | Uint8Array, callback?: (error?: Error | null) => void): boolean;
  end(chunk?: string): unknown;
  destroy(error?: Error): unknown;
  once(event: 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

export class NodeSink implements Sink {
  readonly #res: NodeResponse;
  readonly #owner: SinkOwner;

  constructor(res: NodeResponse, owner: SinkOwner) {
    this.#res = res;
    this.#owner = owner;
    // 'close' fires when the client goes away and after a normal end; both mean "gone".
    res.once('close', owner.gone);
    // A reset socket must never become an uncaught exception; the stream just ends.
    res.on('error', owner.gone);
  }

  get buffered(): number {
    return this.#res.writableLength;
  }

  write(chunk: string | Uint8Array, notify = false): boolean {
    // Node drops writes to a destroyed socket without a word (no error, no callback), and 'close'
    // comes on a later turn: a writer awaiting each send would spin on the dead connection until
    // then, starving the event loop that would deliver it.
    const res = this.#res;
    if (res.destroyed === true || (res.stream ?? res.socket)?.destroyed === true) {
      this.#owner.gone();
      return false;
    }
    res.write(chunk, notify ? this.#afterWrite : undefined);
    return true;
  }

  end(): void {
    this.#res.end();
  }

  destroy(): void {
    this.#res.destroy();
  }

  readonly #afterWrite = (error?: Error | null): void => {
    if (error) this.#owner.gone();
    this.#owner.flushed();
  };
}
