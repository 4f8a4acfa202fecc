/** Start-up's listen, as a promise that leaves nothing behind. */
import type { Server } from 'node:net';

/**
 * Starts `server` listening and resolves once it does, or rejects with its error (a port in use,
 * say). Either way both of its own listeners are gone afterwards: a leftover `once('error')` would
 * swallow the next server error and let the one after it become an uncaught exception.
 */
export function listen(server: Server, port: number, host: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    server.once('listening', onListening);
    server.once('error', onError);
    server.listen(port, host);
  });
}
