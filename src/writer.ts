import type { SseEvent } from './format.js';
import type { Logger } from './logger.js';
import type { SseConnection, SseRequest, SseStream } from './stream.js';

/**
 * The application's part: write events to the stream. The stream ends when the function returns
 * (or its promise settles, or its iterable ends), so a long-lived writer awaits something, such as
 * the stream's `signal`.
 *
 * `Req` is the request's type: inferred from where the handler goes (`app.get('/events',
 * serveSse(...))` gives Express's `Request`, with what the app declared on it such as `user`),
 * or from the writer's own annotation (`(req: Request, stream) => ...`), or given
 * (`serveSse<MyRequest>(...)`). Unsaid, it is any request serve-sse can serve.
 */
export type StreamWriter<Req extends SseRequest = SseRequest> = (
  request: Req,
  stream: SseStream<Req>,
) => void | Promise<void> | AsyncIterable<SseEvent>;

/** Runs the app's writer on an open stream, and ends the stream when the writer is done. */
export async function runWriter(logger: Logger, writer: StreamWriter<never>, stream: SseConnection): Promise<void> {
  try {
    // The request is whatever the handler was given: its type is the app's promise (see StreamWriter).
    const result = (writer as StreamWriter)(stream.request, stream);
    if (isAsyncIterable(result)) await pipeEvents(result, stream);
    else await result;
  } catch (error) {
    // A writer that stops because the client left is not an error worth a stack trace.
    if (!(stream.signal.aborted && isAbortError(error, stream.signal))) {
      logger.error(error, 'serve-sse: the stream writer threw; the stream was closed');
    }
  } finally {
    stream.close();
  }
}

async function pipeEvents(events: AsyncIterable<SseEvent>, stream: SseConnection): Promise<void> {
  const iterator = events[Symbol.asyncIterator]();
  // When the client leaves, ask the iterator to finish rather than waiting for its next event.
  const stop = (): void => {
    iterator.return?.()?.catch(() => {});
  };
  stream.signal.addEventListener('abort', stop, { once: true });
  try {
    while (!stream.closed) {
      const next = await iterator.next();
      if (next.done === true || stream.closed) break;
      await stream.send(next.value);
    }
  } finally {
    stream.signal.removeEventListener('abort', stop);
    if (!stream.closed) await iterator.return?.();
  }
}

function isAbortError(error: unknown, signal: AbortSignal): boolean {
  return error === signal.reason || (error instanceof Error && error.name === 'AbortError');
}

function isAsyncIterable(value: unknown): value is AsyncIterable<SseEvent> {
  return value !== null && typeof value === 'object' && Symbol.asyncIterator in value;
}

