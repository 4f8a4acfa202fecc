import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Payload } from './payload.js';
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
  on(event: 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

const nativeWrite = ServerResponse.prototype.write;

export class NodeSink implements Sink {
  readonly #res: NodeResponse;
  readonly #owner: SinkOwner;
  /**
   * The socket, once writes may go to it directly: HTTP/1.1 chunked, headers on the wire, and
   * `res.write` not wrapped by middleware (compression, say) that must see every byte.
   */
  #socket: Socket | undefined;
  #firstWrite = true;

  constructor(res: NodeResponse, owner: SinkOwner) {
    this.#res = res;
    this.#owner = owner;
    // 'close' fires when the client goes away and after a normal end; both mean "gone".
    res.on('close', owner.gone);
    // A reset socket must never become an uncaught exception; the stream just ends.
    res.on('error', owner.gone);
  }

  get buffered(): number {
    return this.#res.writableLength;
  }

  write(chunk: string | Uint8Array | Payload, notify = false): boolean {
    // Node drops writes to a destroyed socket without a word (no error, no callback), and 'close'
    // comes on a later turn: a writer awaiting each send would spin on the dead connection until
    // then, starving the event loop that would deliver it.
    const res = this.#res;
    if (res.destroyed === true || (res.stream ?? res.socket)?.destroyed === true) {
      this.#owner.gone();
      return false;
    }
    const callback = notify ? (this.#afterWrite ??= this.#makeAfterWrite()) : undefined;
    const socket = this.#socket;
    if (socket === undefined) {
      res.write(chunk instanceof Payload ? chunk.bytes : chunk, callback);
      // The first write puts the headers on the wire; after it the socket may be ours.
      if (this.#firstWrite) this.#takeSocket();
    } else if (chunk instanceof Payload) {
      socket.write(chunk.framed, callback);
    } else if (typeof chunk === 'string') {
      socket.write(`${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`, callback);
    } else {
      socket.write(new Payload(chunk).framed, callback);
    }
    return true;
  }

  end(): void {
    this.#res.end();
  }

  destroy(): void {
    this.#res.destroy();
  }

  #takeSocket(): void {
    this.#firstWrite = false;
    const res = this.#res;
    if (res instanceof ServerResponse && res.write === nativeWrite && res.chunkedEncoding && res.socket !== null) {
      this.#socket = res.socket;
    }
  }

  /** Made on first use: only `"wait"` streams need to hear about flushed writes. */
  #afterWrite: ((error?: Error | null) => void) | undefined;

  #makeAfterWrite(): (error?: Error | null) => void {
    const owner = this.#owner;
    return (error) => {
      if (error) owner.gone();
      owner.flushed();
    };
  }
}
