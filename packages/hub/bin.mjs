#!/usr/bin/env node
// `serve-sse-hub [options]` is `serve-sse hub [options]`. The server lives in serve-sse; this
// package brings what only the server needs (a logger, JWTs, Redis, Mercure's matchers), so that
// the library stays free of dependencies. A global install links this bin, not serve-sse's.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const manifest = require.resolve('serve-sse/package.json');
const { bin } = require(manifest);
process.argv.splice(2, 0, 'hub');
await import(pathToFileURL(join(dirname(manifest), bin['serve-sse'])).href);
