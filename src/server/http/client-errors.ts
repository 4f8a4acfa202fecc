/**
 * Requests Node's HTTP parser refuses, or that do not arrive in time (the server's 'clientError'):
 * a listener for it replaces Node's own answer, so this gives it back, in words. The status is
 * the one Node would send (431 for a head too large, 408 for one too slow, 413 for oversized chunk
 * extensions, 400 for anything malformed), with a short text body, and then the connection closes.
 *
 * As Node does, nothing is written where it would corrupt the connection (an answer already under
 * way on it, such as an open event stream) or to a client that is gone (ECONNRESET): the
 * connection is only closed.
 */
import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface ClientErrorOptions {
  /** Whether an answer on the connection has begun (then nothing more may be written to it). */
  answerStarted(socket: Socket): boolean;
  /** Whether a request on the connection has its head and is waiting for its body. */
  bodyArriving(socket: Socket): boolean;
  /** Node's own limits, for the words: how long a head and a whole request may take (ms). */
  headersTimeout: number;
  requestTimeout: number;
  /** Counts each refusal by status (also those that could not be written). */
  refused(status: number, code: string): void;
}

/**
 * How long a refused connection stays open after the answer, reading (and throwing away) what the
 * client still sends: closing with unread bytes would reset the connection, and a reset can make
 * the client's system discard the answer before it is read.
 */
const LINGER_MS = 2000;

export function createClientErrorHandler(options: ClientErrorOptions): (error: Error, socket: Duplex) => void {
  // The parser reports its error again for every chunk that arrives after the first.
  const handled = new WeakSet<Duplex>();

  return (error, duplex) => {
    if (handled.has(duplex)) return;
    handled.add(duplex);
    const socket = duplex as Socket;
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const { status, text } = refusal(error, code, socket, options);
    options.refused(status, code);
    if (!socket.writable || options.answerStarted(socket)) {
      socket.destroy();
      return;
    }
    socket.end(answer(status, text));
    const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
    socket.once('close', () => clearTimeout(timer));
  };
}

function refusal(error: Error, code: string, socket: Socket, options: ClientErrorOptions): { status: number; text: string } {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        text: `the request head is larger than ${maxHeaderSize} bytes (request line and headers together): send a shorter URL, fewer topics or smaller headers`,
      };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, text: 'the chunk extensions of the body are too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return options.bodyArriving(socket)
        ? { status: 408, text: `the request did not arrive whole within ${options.requestTimeout} ms` }
        : { status: 408, text: `the request head did not arrive within ${options.headersTimeout} ms` };
    default:
      return { status: 400, text: `malformed request: ${parserReason(error, code)}` };
  }
}

/** llhttp's reason ("Invalid method encountered"), a fixed text, with the code for searching. */
function parserReason(error: Error, code: string): string {
  const reason = (error as Error & { reason?: unknown }).reason;
  const words = typeof reason === 'string' && reason !== '' ? reason : error.message;
  // Printable ASCII only, short: it goes into a response.
  const clean = words.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
  return code === '' ? clean : `${clean} (${code})`;
}

/** A whole HTTP/1.1 response, written raw: there is no ServerResponse for a request never parsed. */
function answer(status: number, text: string): string {
  const body = `${text}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Cache-Control: no-store\r\n' +
    'X-Content-Type-Options: nosniff\r\n' +
    'Connection: close\r\n' +
    `\r\n${body}`
  );
}
