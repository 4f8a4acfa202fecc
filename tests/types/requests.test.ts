/**
 * The request type flows from where a handler is used to its writer, `onConnect` and `topics`
 * (Express's `Request` with what the app declared on it, a Koa context, a FastifyRequest, a Fetch
 * `Request`), with no cast, and mismatches do not compile: tsc under `strict` on
 * tests/types/fixture, against the built package as users get it (its .d.ts files).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const fixture = fileURLToPath(new URL('fixture/tsconfig.json', import.meta.url));

test('the request type reaches writers, onConnect and topics in Express, Koa, Fastify, Hono and Fetch code, and mismatches fail', () => {
  const { status, stdout, stderr } = spawnSync(process.execPath, [tsc, '-p', fixture], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(status, 0, `tsc -p ${fixture}:\n${stdout}${stderr}`);
});
