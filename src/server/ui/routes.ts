/**
 * The dashboard's static routes (`serve-sse hub --ui`): `GET /ui` (the page), `/ui/app.js` and
 * `/ui/app.css`, each with a strict Content-Security-Policy: only the page's own script, style and
 * same-origin connections; no inline code, no frames, no forms posted elsewhere. The stats stream
 * (`/ui/stats`) is routed by the server, behind the per-address cap (see stats-stream.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { respond } from '../http/respond.js';
import { dashboardPage } from './page.js';
import { dashboardScript } from './script.js';
import { dashboardStyle } from './style.js';

export const UI_PATH = '/ui';
export const UI_STATS_PATH = '/ui/stats';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const FILES: Record<string, { type: string; body: Buffer }> = {
  [UI_PATH]: { type: 'text/html; charset=utf-8', body: Buffer.from(dashboardPage) },
  [`${UI_PATH}/app.js`]: { type: 'text/javascript; charset=utf-8', body: Buffer.from(dashboardScript) },
  [`${UI_PATH}/app.css`]: { type: 'text/css; charset=utf-8', body: Buffer.from(dashboardStyle) },
};

/** Headers on every dashboard answer, the stream's included. */
export const UI_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** Answers a dashboard path other than the stats stream. */
export function serveUiFile(req: IncomingMessage, res: ServerResponse, path: string): void {
  const method = req.method ?? 'GET';
  const file = FILES[path];
  if (file === undefined) {
    // /ui/ (a trailing slash) would break the page's relative paths: back to /ui.
    if (path === `${UI_PATH}/`) return void res.writeHead(308, { location: '../ui', ...UI_HEADERS }).end();
    return respond(res, 404, `no such dashboard file: ${path.slice(0, 200)} (the dashboard is at ${UI_PATH})`, UI_HEADERS);
  }
  if (method !== 'GET' && method !== 'HEAD') return respond(res, 405, `${method} is not allowed on ${path}; use GET`, { allow: 'GET', ...UI_HEADERS });
  res.writeHead(200, { 'content-type': file.type, 'content-length': String(file.body.length), 'cache-control': 'no-cache', ...UI_HEADERS });
  res.end(method === 'HEAD' ? undefined : file.body);
}
