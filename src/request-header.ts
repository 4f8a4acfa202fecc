import type { SseRequest } from './stream.js';

/**
 * One request header, whichever kind of request it is; the first, if repeated. Duck-typed rather
 * than `instanceof Request`: adapters (such as @hono/node-server) bring their own Request classes.
 */
export function requestHeader(request: SseRequest, name: string): string | undefined {
  // A Node request builds its `headers` object on first access and keeps it for the life of the
  // connection (hundreds of bytes per idle stream); the parser's raw list is there already.
  if ('rawHeaders' in request) return rawHeader(request.rawHeaders, name);
  return request.headers.get(name) ?? undefined;
}

/** `name` must be lower case. */
function rawHeader(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i]!;
    if (key.length === name.length && key.toLowerCase() === name) return raw[i + 1];
  }
  return undefined;
}
