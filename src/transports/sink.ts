/**
 * Where a stream's bytes go. The stream owns the protocol and the slow-client policy; a sink only
 * moves bytes to one kind of response (node:http, node:http2, a web ReadableStream).
 */
export interface Sink {
  /**
   * Queues bytes for the client. `onFlushed`, when given, is called once these bytes have left
   * the sink's buffer (or the connection is gone): how `"wait"` learns that the client caught up.
   */
  write(chunk: string | Uint8Array, onFlushed?: () => void): void;
  /** Bytes accepted but not yet handed on: the measure of a slow client. */
  readonly buffered: number;
  /** Ends the response cleanly: the client sees the end of the stream and reconnects. */
  end(): void;
  /** Drops the connection now, discarding unsent bytes. */
  destroy(): void;
}
