/**
 * Where a stream's bytes go. The stream owns the protocol and the slow-client policy; a sink only
 * moves bytes to one kind of response (node:http, node:http2, a web ReadableStream) and reports
 * back through {@link SinkOwner}.
 */
import type { Payload } from './payload.js';

export interface Sink {
  /**
   * Queues bytes for the client; `false` when the connection turned out to be gone. With
   * `notify`, the owner's `flushed()` runs once these bytes have left the sink's buffer (or the
   * connection is gone): how `"wait"` learns that the client caught up.
   */
  write(chunk: string | Uint8Array | Payload, notify?: boolean): boolean;
  /** Bytes accepted but not yet handed on: the measure of a slow client. */
  readonly buffered: number;
  /**
   * `buffered > mark`, where a sink may know the answer without counting (its last write said it
   * is under a mark of its own, no larger): what is asked after every write, at every delivery.
   */
  over(mark: number): boolean;
  /** Holds writes until `uncork()`, so that several leave together (one system call, where there are any). */
  cork(): void;
  uncork(): void;
  /** Ends the response cleanly: the client sees the end of the stream and reconnects. */
  end(): void;
  /** Drops the connection now, discarding unsent bytes. */
  destroy(): void;
}

/** What a sink tells the stream that owns it. */
export interface SinkOwner {
  /** The client went away, the response finished, or a write failed. May be called more than once. */
  gone(): void;
  /** Bytes written with `notify` have been flushed. */
  flushed(): void;
}
