import type { ServerResponse } from 'node:http';

/** Answers with a plain-text body: every refusal of the hub server says in words what is wrong. */
export function respond(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const body = text.endsWith('\n') ? text : `${text}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(body);
}
