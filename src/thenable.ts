/**
 * Whether a value is a promise (or any thenable) rather than the value itself: the paths that
 * take a sync-or-async answer (onConnect, a hub's topics) await only when they must, so that the
 * common synchronous case costs no promise and no turn of the event loop.
 */
export function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
