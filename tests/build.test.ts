/**
 * `npm start` builds only when it must: `scripts/build.mjs --if-stale` leaves an up-to-date dist/
 * alone (the full build is `npm run build`, which every test run does first).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('npm start skips the build when dist/ is newer than its inputs', () => {
  const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.start!, /^node scripts\/build\.mjs --if-stale && /);
  const before = { stamp: statSync(`${ROOT}/dist/.built`).mtimeMs, index: statSync(`${ROOT}/dist/esm/index.js`).mtimeMs };
  const started = Date.now();
  const { status, stdout, stderr } = spawnSync(process.execPath, ['scripts/build.mjs', '--if-stale'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(status, 0, stderr);
  assert.equal(stdout + stderr, '');
  assert.ok(Date.now() - started < 5000, 'no compilation');
  assert.deepEqual({ stamp: statSync(`${ROOT}/dist/.built`).mtimeMs, index: statSync(`${ROOT}/dist/esm/index.js`).mtimeMs }, before);
});
