/**
 * The types a server and its clients share: event types to what their data is. A hub made with
 * `createHub<Events>({ json: true })` checks what it publishes against them; an `EventSource`
 * of `serve-sse/client` made with `new EventSource<Events>(url, { json: true })` hands its
 * listeners the parsed data, typed. Types only: nothing here exists at run time.
 */
import type { SseEvent } from './format.js';

/** Event types to what their `data` is (`message`: events without an `event` field). */
export type EventMap = Record<string, unknown>;

/** An event of a typed hub: its `event` names the type of its `data`. */
export type TypedEvent<Events extends EventMap> = {
  [Type in keyof Events & string]: Omit<SseEvent, 'event' | 'data'> & { data: Events[Type] } & (Type extends 'message' ? { event?: 'message' } : { event: Type });
}[keyof Events & string];
