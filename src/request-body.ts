/**
 * Reading a request body that a client controls: bounded in size and in time, from a Node
 * request or a Fetch `Request`. Used by the endpoints that take a body (publishing).
 */
import type { IncomingMessage } from 'node:http';

export interface BodyLimits {
  /** Largest body, in bytes. */
  maxBody: number;
  /** Milliseconds the whole body may take, counted from `since`. */
  bodyTimeout: number;
  /** When the request's head arrived (`Date.now()`). */
  since: number;
}

/** The whole body; or why not: larger than `maxBody`, or not all there by the deadline. */
export type Body = Uint8Array | 'too large' | 'too slow';

/**
 * The whole body, or `"too large"` as soon as it passes `maxBody` bytes, or `"too slow"` when it
 * has not all arrived by the deadline (the rest is not read then: the answer should close the
 * connection). With `keep` false the bytes are counted and dropped (a refused request whose body
 * must still be read, so that closing does not reset the connection under the answer).
 * Rejects only if the client goes away mid-body.
 */
export function readBody(request: IncomingMessage | Request, limits: BodyLimits, keep = true): Promise<Body> {
  return request instanceof Request || !('on' in request) ? readWebBody(request as Request, limits, keep) : readNodeBody(request, limits, keep);
}

/** The Content-Type's essence, lower case, and whether its charset (if any) is UTF-8. */
export function contentType(header: string | null | undefined): { essence: string; charset: string | undefined; utf8: boolean } {
  const [essence = '', ...params] = (header ?? '').split(';').map((part) => part.trim().toLowerCase());
  const charset = params.find((param) => param.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
  return { essence, charset, utf8: charset === undefined || charset === 'utf-8' || charset === 'utf8' || charset === 'us-ascii' };
}

function readNodeBody(request: IncomingMessage, { maxBody, bodyTimeout, since }: BodyLimits, keep: boolean): Promise<Body> {
  const declared = Number(request.headers['content-length']);
  if (declared > maxBody) return Promise.resolve('too large');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      clearTimeout(timer);
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
      request.off('close', onClose);
    };
    // Stop buffering what the client keeps sending; the answer (413, 408) closes the connection.
    const giveUp = (why: 'too large' | 'too slow'): void => {
      cleanup();
      request.pause();
      resolve(why);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBody) giveUp('too large');
      else if (keep) chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, keep ? size : 0));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onClose = (): void => onError(new Error('the client went away before sending the whole body'));
    // Node's own request timeout is far longer (and answers without saying which endpoint): a
    // stalled body would hold its connection for minutes.
    const timer = setTimeout(() => giveUp('too slow'), Math.max(0, since + bodyTimeout - Date.now()));
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
    request.on('close', onClose);
  });
}

async function readWebBody(request: Request, { maxBody, bodyTimeout, since }: BodyLimits, keep: boolean): Promise<Body> {
  const declared = Number(request.headers.get('content-length'));
  if (declared > maxBody) return 'too large';
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<'too slow'>((resolve) => (timer = setTimeout(resolve, Math.max(0, since + bodyTimeout - Date.now()), 'too slow')));
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), late]);
      if (next === 'too slow') return next;
      if (next.done) break;
      size += next.value.byteLength;
      if (size > maxBody) return 'too large';
      if (keep) chunks.push(next.value);
    }
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
  const body = new Uint8Array(keep ? size : 0);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}
