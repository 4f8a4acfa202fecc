import { Payload } from './payload.js';
import type { Sink, SinkOwner } from './sink.js';

const encoder = new TextEncoder();

/**
 * A sink that feeds a web `ReadableStream`, the body of a Fetch-API `Response`. The queue has a
 * high-water mark of zero, so `buffered` is exactly the bytes the runtime has not read yet and
 * `pull` means the reader has caught up.
 */
export class WebSink implements Sink {
  readonly readable: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly #owner: SinkOwner;
  /** Writes waiting to be read, whose owner asked to hear when they are. */
  #notify = false;
  #open = true;
  /** `end()` came while chunks were still queued: the body closes once the reader has them. */
  #ending = false;

  constructor(owner: SinkOwner) {
    this.#owner = owner;
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () => {
          // The reader has taken every chunk: an ending body can close now.
          if (this.#ending) this.#closeBody();
          this.#runFlushed();
        },
        cancel: () => {
          this.#open = false;
          this.#ending = false;
          this.#runFlushed();
          owner.gone();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    );
  }

  over(mark: number): boolean {
    return this.buffered > mark;
  }

  get buffered(): number {
    return this.#open ? -(this.#controller.desiredSize ?? 0) : 0;
  }

  write(chunk: string | Uint8Array | Payload, notify = false): boolean {
    if (!this.#open) return false;
    const bytes = typeof chunk === 'string' ? encoder.encode(chunk) : chunk instanceof Payload ? chunk.bytes : chunk;
    this.#controller.enqueue(bytes);
    if (notify) this.#notify = true;
    return true;
  }

  /** A web stream has no system calls to save: each chunk is a queue entry either way. */
  cork(): void {}

  uncork(): void {}

  /**
   * Ends the body once the reader has taken what is queued, and then tells the owner the
   * connection is done. A web body says nothing when it has been read to its end (`cancel` is for
   * a reader that gives up), and the runtime's `request.signal` need not abort after a response
   * that completed (Deno's default does, Bun's and Deno's `--unstable-no-legacy-abort` do not): so
   * without this, `whenGone()` never resolved for a stream the server ended, `hub.close()` waited
   * its whole timeout for every Fetch-API client (Hono, Next.js, Bun, Deno) and then warned, and
   * its cut did nothing, since the body was already closed.
   */
  end(): void {
    if (!this.#open) return;
    this.#open = false;
    // With a high-water mark of zero, a desired size of zero means an empty queue.
    if ((this.#controller.desiredSize ?? 0) < 0) this.#ending = true;
    else this.#closeBody();
    this.#runFlushed();
  }

  destroy(): void {
    // An ending body whose reader stopped reading can still be cut.
    if (!this.#open && !this.#ending) return;
    this.#open = false;
    this.#ending = false;
    // Erroring the body makes the runtime abort the connection instead of ending it cleanly.
    this.#controller.error(new Error('serve-sse: connection closed (slow client)'));
    this.#runFlushed();
    this.#owner.gone();
  }

  #closeBody(): void {
    this.#ending = false;
    this.#controller.close();
    this.#owner.gone();
  }

  #runFlushed(): void {
    if (!this.#notify) return;
    this.#notify = false;
    this.#owner.flushed();
  }
}
