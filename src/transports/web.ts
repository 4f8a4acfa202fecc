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

  constructor(owner: SinkOwner) {
    this.#owner = owner;
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () => this.#runFlushed(),
        cancel: () => {
          this.#open = false;
          this.#runFlushed();
          owner.gone();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    );
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

  end(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#controller.close();
    this.#runFlushed();
  }

  destroy(): void {
    if (!this.#open) return;
    this.#open = false;
    // Erroring the body makes the runtime abort the connection instead of ending it cleanly.
    this.#controller.error(new Error('serve-sse: connection closed (slow client)'));
    this.#runFlushed();
  }

  #runFlushed(): void {
    if (!this.#notify) return;
    this.#notify = false;
    this.#owner.flushed();
  }
}
