#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createDemoServer } from './demo.js';

const USAGE = `Usage: serve-sse <command> [options]

Commands:
  demo    Serve the demo page and its event stream.
  hub     Run a standalone hub: backends publish over HTTP, browsers subscribe.
          "serve-sse hub --help" lists its options and their environment variables.

Options for demo:
  --port N     Port to listen on (env PORT, default 8080; 0 picks a free one).
  --host HOST  Address to listen on (env HOST, default: all interfaces).
  -h, --help   Show this help.
`;

function fail(message: string): never {
  process.stderr.write(`serve-sse: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) fail(`--port must be a number from 0 to 65535, got ${JSON.stringify(value)}`);
  return port;
}

function runDemo(args: string[]): void {
  let values: { port?: string; host?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: { port: { type: 'string' }, host: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (error) {
    fail((error as Error).message);
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return;
  }
  const port = parsePort(values.port ?? process.env.PORT ?? '8080');
  const host = values.host ?? process.env.HOST;
  const server = createDemoServer();
  server.on('error', (error) => fail(`cannot listen: ${error.message}`));
  server.listen(port, host, () => {
    const address = server.address();
    const actual = typeof address === 'object' && address !== null ? address.port : port;
    const shown = host === undefined ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    process.stdout.write(`serve-sse demo listening on http://${shown}:${actual}\n`);
  });
  const stop = (): void => {
    server.close();
    // Open event streams would keep server.close() waiting forever.
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/**
 * Loaded only for this command: pino and jose are optional peer dependencies of serve-sse (the
 * library needs neither), so an install without them gets told what to add.
 */
async function runHubCommand(args: string[]): Promise<void> {
  let hub: typeof import('./hub.js');
  try {
    hub = await import('./hub.js');
  } catch (error) {
    const missing = /Cannot find (?:package|module) '(pino|jose)'/.exec(String((error as Error)?.message));
    if (missing === null) throw error;
    process.stderr.write(`serve-sse hub needs the packages pino and jose (${missing[1]} is missing): npm install pino jose\n`);
    process.exit(1);
  }
  await hub.runHub(args);
}

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'demo':
    runDemo(rest);
    break;
  case 'hub':
    await runHubCommand(rest);
    break;
  case undefined:
  case '-h':
  case '--help':
  case 'help':
    process.stdout.write(USAGE);
    break;
  default:
    fail(`unknown command ${JSON.stringify(command)}`);
}
