#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createDemoServer } from './demo.js';

const USAGE = `Usage: serve-sse <command> [options]

Commands:
  demo    Serve the demo page and its event stream.
  hub     Run a standalone hub: backends publish over HTTP, browsers subscribe.
          "serve-sse hub --help" lists its options and their environment variables.
          Needs the hub server's dependencies: npm install serve-sse-hub
  token   Print a JWT for publishers or subscribers of the hub ("serve-sse token --help").

  -v, --version  Print the version.

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
  // A run-time failure, not a usage mistake: one line, no usage text.
  server.on('error', (error: NodeJS.ErrnoException) => {
    const why = error.code === 'EADDRINUSE' ? `port ${port} is in use (--port picks another)` : error.message;
    process.stderr.write(`serve-sse demo: cannot listen: ${why}\n`);
    process.exit(1);
  });
  server.listen(port, host, () => {
    const address = server.address();
    const actual = typeof address === 'object' && address !== null ? address.port : port;
    const shown = host === undefined ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    process.stdout.write(`serve-sse demo listening on http://${shown}:${actual}\n`);
  });
  const stop = (): void => {
    server.close();
    // Browsers told to come back in 2 s find the restarted demo; cutting streams would show
    // "Server unavailable" at once. Whatever lingers past a second is cut.
    void server.endStreams(2000).then(() => server.closeIdleConnections());
    setTimeout(() => {
      server.closeAllConnections();
      process.exit(0);
    }, 1000).unref();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** The package that brings the hub server's dependencies (pino, jose, ioredis…): serve-sse needs none. */
const HUB_PACKAGE = 'serve-sse-hub';

/**
 * Loads a command's module, which needs the hub server's dependencies: where they are missing,
 * says which package to install rather than showing a stack trace.
 */
async function loadServerModule<T>(command: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const missing = /Cannot find (?:package|module) '([^']+)'/.exec(String((error as Error)?.message));
    if (missing === null || missing[1]!.startsWith('.') || missing[1]!.startsWith('/')) throw error;
    process.stderr.write(`serve-sse ${command} needs the hub server's dependencies (${missing[1]} is missing): npm install ${HUB_PACKAGE}\n`);
    process.exit(1);
  }
}

async function runHubCommand(args: string[]): Promise<void> {
  // The help and the version need nothing beyond this package.
  if (args.includes('--help') || args.includes('-h')) {
    const { hubUsage } = await import('./hub-flags.js');
    process.stdout.write(hubUsage());
    return;
  }
  if (args.includes('--version')) return printVersion();
  const hub = await loadServerModule('hub', () => import('./hub.js'));
  await hub.runHub(args);
}

async function runTokenCommand(args: string[]): Promise<void> {
  const { runToken, TOKEN_USAGE } = await import('./token.js');
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(TOKEN_USAGE);
    return;
  }
  // jose is imported when the token is signed: a missing one surfaces there.
  await loadServerModule('token', () => runToken(args));
}

function printVersion(): void {
  const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  process.stdout.write(`${version}\n`);
}

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'demo':
    runDemo(rest);
    break;
  case 'hub':
    await runHubCommand(rest);
    break;
  case 'token':
    await runTokenCommand(rest);
    break;
  case '-v':
  case '--version':
  case 'version':
    printVersion();
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
