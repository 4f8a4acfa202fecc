/**
 * `serve-sse/client`: an `EventSource` for browsers, Node 20+, Bun and Deno, with the WHATWG
 * interface and what the native one lacks: one connection per browser profile and URL, retries
 * that back off, headers, stall detection, typed events. No dependencies, no Node built-ins.
 */
export { EventSource, SseErrorEvent, type EventSourceOptions, type StringEvents } from './event-source.js';
export type { EventMap } from '../event-map.js';
export type { HeadersOption } from './connection.js';
