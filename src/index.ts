export { formatEvent, type SseEvent } from './format.js';
export { sendEvent, type SseStream, type SseRequest, type SlowClientPolicy } from './stream.js';
export { lastEventIdOf } from './last-event-id.js';
export { defaultOnConnect, type ConnectResult, type OnConnect } from './connect.js';
export type { CorsOptions, CorsOption } from './cors.js';
export {
  serveSse,
  type ServeSseOptions,
  type SseHandler,
  type StreamWriter,
  type NextFunction,
} from './serve.js';
export type { Logger } from './logger.js';
export type { EventMap, TypedEvent } from './event-map.js';
export {
  createHub,
  type Hub,
  type HubOptions,
  type TypedHub,
  type HubStats,
  type HubHandlerOptions,
  type Subscription,
  type HubCloseOptions,
  type ResetData,
} from './hub/hub.js';
export type { Backplane, EntryMeta, LogEntry, LogListener } from './backplanes/backplane.js';
