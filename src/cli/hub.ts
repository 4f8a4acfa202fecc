/**
 * `serve-sse hub`: settings from flags and environment, the server, and the process around it:
 * exit 2 for bad settings, 1 when it cannot start, 0 after a graceful shutdown on SIGTERM/SIGINT.
 * With `--workers N` (N > 1), the same rules hold for the primary (./hub-workers.ts).
 */
import { StartupError } from '../server/backplane.js';
import type { HubServerConfig } from '../server/config.js';
import { ConfigError, hubUsage, parseHubArgs } from './hub-flags.js';
import { createHubServer } from '../server/server.js';
import { EXIT_GRACE, runPrimary, runWorker, workerSlot } from './hub-workers.js';

export async function runHub(args: readonly string[]): Promise<void> {
  let config: HubServerConfig;
  try {
    const parsed = parseHubArgs(args, process.env);
    if (parsed.help) {
      process.stdout.write(hubUsage());
      return;
    }
    config = parsed.config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`serve-sse hub: ${error.message}\nRun "serve-sse hub --help" for the options.\n`);
    process.exit(2);
  }

  // `--workers N`: this process is the primary, or one of the workers it forked.
  const slot = workerSlot();
  if (slot !== undefined) return runWorker(config, slot);
  if (config.workers > 1) return runPrimary(config, args);

  let running;
  try {
    running = await createHubServer(config);
  } catch (error) {
    const message = error instanceof StartupError ? error.message : `cannot start: ${(error as Error).message}`;
    process.stderr.write(`serve-sse hub: ${message}\n`);
    process.exit(1);
  }

  let stopping = false;
  const stop = (): void => {
    if (stopping) {
      // A second signal means "now": the graceful shutdown in progress is abandoned.
      process.stderr.write('serve-sse hub: second signal, exiting at once\n');
      process.exit(1);
    }
    stopping = true;
    // Bounded whatever happens on the graceful path.
    setTimeout(() => process.exit(0), config.shutdownTimeout + EXIT_GRACE).unref();
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`serve-sse hub: shutdown failed: ${(error as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
