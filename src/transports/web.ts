import type { Sink } from './sink.js';

const encoder = new TextEncoder();

/**
 * A sink that feeds a web `ReadableStream`, the body of a Fetch-API `Response`. The queue has a
 * high-water mark of zero, so `buffered` is exactly the bytes the runtime has not read yet and
 * `pull` means the reader has caught up.
 */
export class WebSink implements Sink {
  readonly readable: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #flushed: Array<() => void> = [];
  #open = true;

  constructor(onGone: () => void) {
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () => this.#runFlushed(),
        cancel: () => {
          this.#open = false;
          this.#runFlushed();
          onGone();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    );
  }

  get buffered(): number {
    return this.#open ? -(this.#controller.desiredSize ?? 0) : 0;
  }

  write(chunk: string | Uint8Array, onFlushed?: () => void): void {
    if (!this.#open) return;
    this.#controller.enqueue(typeof chunk === 'string' ? encoder.encode(chunk) : chunk);
    if (onFlushed !== undefined) this.#flushed.push(onFlushed);
  }

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
    const callbacks = this.#flushed;
    if (callbacks.length === 0) return;
    this.#flushed = [];
    for (const callback of callbacks) callback();
  }
}
