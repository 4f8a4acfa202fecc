/**
 * The logging contract: the four methods that pino, console and most loggers share. Calls pass
 * the structured part first (`logger.error(err, 'message')`), which pino serialises (stack
 * included) and console prints as is.
 */
export interface Logger {
  error(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
  debug(obj: unknown, msg?: string): void;
}

const ignore = (): void => {};

/** Warnings and errors to the console, prefixed; info and debug are dropped. */
export const consoleLogger: Logger = {
  error: (obj, msg) => console.error(`[serve-sse] ${msg ?? ''}`, obj),
  warn: (obj, msg) => console.warn(`[serve-sse] ${msg ?? ''}`, obj),
  info: ignore,
  debug: ignore,
};
