/**
 * A whole answer (status, headers, body) and how it goes out on either transport: the Mercure
 * endpoints that are not event streams (publishing, the subscriptions API, refusals) are written
 * once, for Node responses and Fetch `Response`s alike.
 */
import type { NodeResponse } from '../../transports/node.js';

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

const TEXT = 'text/plain; charset=utf-8';

/** A text answer: every refusal says in words what is wrong. */
export function text(status: number, body: string, headers: Record<string, string> = {}): Answer {
  return { status, headers: { 'content-type': TEXT, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers }, body: body.endsWith('\n') ? body : `${body}\n` };
}

export function json(status: number, document: unknown, contentType = 'application/json'): Answer {
  return { status, headers: { 'content-type': contentType, 'cache-control': 'must-revalidate' }, body: JSON.stringify(document) };
}

export function sendNode(res: NodeResponse, answer: Answer, head = false): void {
  if (res.headersSent || res.destroyed === true) return;
  res.writeHead(answer.status, answer.headers);
  res.end(head ? undefined : answer.body);
}

export function toResponse(answer: Answer, head = false): Response {
  const bodyless = head || answer.status === 204 || answer.status === 304;
  return new Response(bodyless ? null : answer.body, { status: answer.status, headers: answer.headers });
}
