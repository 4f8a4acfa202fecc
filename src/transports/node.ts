import type { Sink } from './sink.js';

/**
 * What serve-sse needs of a Node response. `http.ServerResponse` and the HTTP/2 compatibility
 * `Http2ServerResponse` both fit, and so do the Express and Connect responses built on them.
 */
export interface NodeResponse {
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableLength: number;
  readonly destroyed?: boolean;
  writeHead(status: number, headers?: Record<string, string>): unknown;
  write(chunk: string | Uint8Array, callback?: (error?: Error | null) => void): boolean;
  end(chunk?: string): unknown;
  destroy(error?: Error): unknown;
  once(event: 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

export class NodeSink implements Sink {
  readonly #res: NodeResponse;

  constructor(res: NodeResponse, onGone: () => void, onError: (error: Error) => void) {
    this.#res = res;
    // 'close' fires when the client goes away and after a normal end; both mean "gone".
    res.once('close', onGone);
    // A response error (a reset socket mid-write) must never become an uncaught exception.
    res.on('error', onError);
  }

  get buffered(): number {
    return this.#res.writableLength;
  }

  write(chunk: string | Uint8Array, onFlushed?: () => void): void {
    this.#res.write(chunk, onFlushed);
  }

  end(): void {
    this.#res.end();
  }

  destroy(): void {
    this.#res.destroy();
  }
}
