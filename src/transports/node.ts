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
  /** Added by compression middleware (`compression`): pushes out what its encoder holds. */
  flush?(): void;
  end(chunk?: string): unknown;
  /** HTTP/1 only; the HTTP/2 compat response has none. */
  cork?(): void;
  uncork?(): void;
  destroy(error?: Error): unknown;
  on(event: 'close' | 'drain', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

const nativeWrite = ServerResponse.prototype.write;
const OWNER = Symbol('serve-sse.owner');

interface OwnedResponse extends NodeResponse {
  [OWNER]: SinkOwner;
}

function responseGone(this: OwnedResponse): void {
  this[OWNER].gone();
}

export class NodeSink implements Sink {
  readonly #res: NodeResponse;
  readonly #owner: SinkOwner;
  /**
   * The socket, once writes may go to it directly: HTTP/1.1 chunked, headers on the wire, and
   * `res.write` not wrapped by middleware (compression, say) that must see every byte.
   */
  #socket: Socket | undefined;
  /** The socket's own high-water mark: a write it took under that leaves it under any mark above. */
  #socketMark = 0;
  /** Whether the socket's last write left it at or past its own mark (or found it gone). */
  #full = false;
  #firstWrite = true;
  /**
   * Whether writes go through compression middleware. Its encoder holds bytes back until it has a
   * block's worth, so an event could wait for the next ones: each write is flushed at once. The
   * default `Cache-Control: no-transform` keeps `compression` out, but an app may override it.
   */
  readonly #flushes: boolean;
  /**
   * Whether middleware replaced `res.write` on this response (compression does). Its own buffer is
   * invisible in `writableLength`, and it may drop write callbacks: its backpressure is read from
   * what `write` returns and from its 'drain' instead.
   */
  readonly #wrapped: boolean;
  /** Bytes a wrapping `write` took past its limit, not drained yet. */
  #held = 0;

  constructor(res: NodeResponse, owner: SinkOwner) {
    this.#res = res;
    this.#owner = owner;
    this.#flushes = typeof res.flush === 'function';
    this.#wrapped = Object.hasOwn(res, 'write');
    // One listener function for every response, finding its owner on the response, rather than a
    // closure per connection. 'close' fires when the client goes away and after a normal end; both
    // mean "gone". A reset socket must never become an uncaught exception; the stream just ends.
    (res as OwnedResponse)[OWNER] = owner;
    res.on('close', responseGone);
    res.on('error', responseGone);
    // Through the wrapper's own `on`: compression hands 'drain' listeners to its encoder.
    if (this.#wrapped) res.on('drain', this.#drained);
  }

  get buffered(): number {
    // Once the socket is ours, nothing waits in the response (its `writableLength` is its own
    // `outputSize`, 0 by then, plus the socket's): read the socket's alone, one getter, not three.
    const socket = this.#socket;
    if (socket !== undefined) return socket.writableLength;
    return this.#res.writableLength + this.#held;
  }

  over(mark: number): boolean {
    if (this.#socket !== undefined && !this.#full && mark >= this.#socketMark) return false;
    return this.buffered > mark;
  }

  write(chunk: string | Uint8Array | Payload, notify = false): boolean {
    const callback = notify ? (this.#afterWrite ??= this.#makeAfterWrite()) : undefined;
    const first = this.#firstWrite;
    const socket = this.#socket ?? (first ? this.#takeSocket() : undefined);
    if (socket !== undefined) {
      let under: boolean;
      // A socket is taken only where node:http has its own first write (`sendWithHead`).
      if (first) under = writeWithHead(sendWithHead!, this.#res as ServerResponse, chunk, callback);
      else if (chunk instanceof Payload) under = socket.write(framedChunk(chunk), callback);
      else if (typeof chunk === 'string') under = socket.write(`${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`, callback);
      else under = socket.write(frame(chunk), callback);
      // Node drops a write to a destroyed socket (it says so only to a callback, on a later turn),
      // and 'close' comes later still: a writer awaiting each send would spin on the dead
      // connection until then, starving the event loop that would deliver it. Such a write
      // returns false, as a write past the mark does: only then is the socket's flag read.
      // Destroying the response destroys its socket, so the flag says it for both.
      if (!under && socket.destroyed) return this.#lost();
      this.#full = !under;
      return true;
    }
    const res = this.#res;
    if (res.destroyed === true || (res.stream ?? res.socket)?.destroyed === true) return this.#lost();
    const bytes = chunk instanceof Payload ? chunk.bytes : chunk;
    const accepted = res.write(bytes, callback);
    if (this.#wrapped && (!accepted || this.#held > 0)) {
      this.#held += typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
    }
    if (this.#flushes) res.flush!();
    // Written by `res.write` with the first chunk, the head kept is a tree of pieces: flattened here.
    if (first) compactHead(res);
    return true;
  }

  #lost(): false {
    this.#owner.gone();
    return false;
  }

  cork(): void {
    (this.#socket ?? this.#res).cork?.();
  }

  /** The same target as `cork()`: the opening write, which hands over the socket, comes before any. */
  uncork(): void {
    (this.#socket ?? this.#res).uncork?.();
  }

  end(): void {
    // The socket may serve the next request on the connection: it is no longer this stream's.
    this.#socket?.off('end', clientLeft);
    this.#res.end();
  }

  destroy(): void {
    this.#res.destroy();
  }

  /**
   * At the first write: hands over the socket when writes may go to it directly (HTTP/1.1
   * chunked, `res.write` not wrapped by middleware that must see every byte). The first chunk then
   * leaves with the head (`writeWithHead`), corked: what else is written in this turn, a replay,
   * joins them in the same system call.
   */
  #takeSocket(): Socket | undefined {
    this.#firstWrite = false;
    const res = this.#res;
    if (sendWithHead !== undefined && res instanceof ServerResponse && res.write === nativeWrite && res.chunkedEncoding && res.socket !== null && !res.socket.destroyed) {
      const socket = res.socket;
      // Uncorked on the next tick, as Node does for a first write: a replay queued in this turn
      // leaves with the head.
      socket.cork();
      process.nextTick(uncork, socket);
      (socket as ClaimedSocket)[RESPONSE] = res;
      socket.on('end', clientLeft);
      this.#socketMark = socket.writableHighWaterMark;
      return (this.#socket = socket);
    }
    return undefined;
  }

  readonly #drained = (): void => {
    this.#held = 0;
    this.#owner.flushed();
  };

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

const RESPONSE = Symbol('serve-sse.response');

interface ClaimedSocket extends Socket {
  [RESPONSE]: ServerResponse;
}

/**
 * The client closed its side of the connection (an EventSource closing, a tab going away): the
 * stream is over. Node's server (its requests are never half-open) would only end the socket
 * gracefully here, a shutdown and then a close, and at the close build an ECONNRESET error for the
 * request and format its stack, a sixth of what a connect-and-leave cycle costs. The socket is
 * destroyed now and the request with it, without an error: a client leaving is not one. The
 * request still hears 'aborted' and 'close', and the response 'close', as before.
 * A response that already ended (the socket kept alive for the next request) is left alone.
 */
function clientLeft(this: ClaimedSocket): void {
  const res = this[RESPONSE];
  if (res.writableEnded) return;
  this.destroy();
  res.req.destroy();
}

/** `ServerResponse`'s own first write, which joins a string chunk to the head (Node's `_send`). */
type SendWithHead = (this: ServerResponse, data: string, encoding: 'latin1', callback?: (error?: Error | null) => void) => boolean;

/**
 * Node's own first write, when this node:http has it (Node has had it always; another runtime's
 * node:http may not, and its responses then take the `res.write` path).
 */
const sendWithHead = (ServerResponse.prototype as unknown as { _send?: SendWithHead })._send;

/**
 * The head and the first chunk as one string, one write: what a `node:http` response does when
 * its first `res.write` is a string, and the cheapest way a connection can start (paired against
 * the head flushed alone and the chunk corked after it, a writev of two parts, it costs less per
 * connect). Through node:http's own first write, which sends the head it built and marks it sent.
 */
function writeWithHead(send: SendWithHead, res: ServerResponse, chunk: string | Uint8Array | Payload, callback: ((error?: Error | null) => void) | undefined): boolean {
  const text = chunk instanceof Payload ? (chunk.framedHead ??= latin1(framedChunk(chunk))) : latin1(frameAny(chunk));
  const under = send.call(res, text, 'latin1', callback);
  compactHead(res);
  return under;
}

function frameAny(chunk: string | Uint8Array): Buffer {
  return frame(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

function uncork(socket: Socket): void {
  socket.uncork();
}

/**
 * The payload as one HTTP/1.1 chunk, built once for every socket it goes to. A Buffer: given a
 * plain Uint8Array, `socket.write` would wrap it in a new Buffer on every call.
 */
function framedChunk(payload: Payload): Uint8Array {
  return (payload.framed ??= frame(payload.bytes));
}

/** `<size in hex>\r\n<bytes>\r\n`: the chunked transfer-coding of `bytes`. */
function frame(bytes: Uint8Array): Buffer {
  const size = bytes.byteLength.toString(16);
  const framed = Buffer.allocUnsafe(size.length + 2 + bytes.byteLength + 2);
  let at = framed.write(size, 0, 'latin1');
  at += framed.write('\r\n', at, 'latin1');
  framed.set(bytes, at);
  framed.write('\r\n', at + bytes.byteLength, 'latin1');
  return framed;
}

/**
 * Whether the response has its connection, or once it has: `false` if the connection closed
 * first. A request pipelined behind another on one HTTP/1.1 connection gets its response at
 * once, but the response gets the socket only when the ones before it are done, and Node never
 * tells a response still waiting that the socket closed. Nothing may start for such a request
 * (a stream, a subscription) until it owns the socket, or it would outlive it.
 */
export function whenResponseHasSocket(req: { socket?: Socket | null }, res: NodeResponse): true | Promise<boolean> {
  const socket = req.socket;
  if (res.socket !== null || !(res instanceof ServerResponse) || socket == null) return true;
  if (socket.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const cancel = onSocketClose(socket, () => {
      res.off('socket', assigned);
      resolve(false);
    });
    const assigned = (): void => {
      cancel();
      resolve(true);
    };
    res.once('socket', assigned);
  });
}

/**
 * One 'close' listener per socket for every response queued on it: a hundred pipelined requests
 * must not mean a hundred listeners (and Node's leak warning) on one socket.
 */
const closeWaiters = new WeakMap<Socket, Set<() => void>>();

function onSocketClose(socket: Socket, listener: () => void): () => void {
  let waiters = closeWaiters.get(socket);
  if (waiters === undefined) {
    const set = (waiters = new Set());
    closeWaiters.set(socket, set);
    socket.once('close', () => {
      closeWaiters.delete(socket);
      for (const waiter of set) waiter();
    });
  }
  waiters.add(listener);
  return () => waiters.delete(listener);
}

/**
 * Node builds the response head by appending strings, and keeps it (`_header`) for the life of
 * the response. Sent on its own, the head is flattened as it is written; sent with the first
 * chunk, as here, the copy is flattened and the kept head stays a tree of some 25 string pieces:
 * about 800 bytes per idle connection, more than the rest of serve-sse's per-connection state.
 * Converting it to a number flattens it in place (V8 does), so the pieces can be collected.
 */
function compactHead(res: NodeResponse): void {
  const head: unknown = (res as { _header?: unknown })._header;
  if (typeof head === 'string') Number(head);
}
