/**
 * The built package as users get it: imported by its name (self-reference through the `exports`
 * map) from ESM and CommonJS, each in a fresh Node process, plus the package.json contract.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Report {
  resolved: string;
  types: Record<string, string>;
  formatted: string;
}

interface PackageJson {
  dependencies?: Record<string, string>;
  bin?: Record<string, string>;
  exports: Record<string, { import: { types: string }; require: { types: string } }>;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
const NAMES = ['serveSse', 'formatEvent', 'sendEvent', 'defaultOnConnect'];

/** Runs `node ...args` from the project root and parses the JSON it prints. */
async function report(args: string[]): Promise<Report> {
  const { stdout } = await execFileAsync(process.execPath, args, { cwd: ROOT, timeout: 10_000 });
  return JSON.parse(stdout) as Report;
}

function check({ resolved, types, formatted }: Report, half: 'esm' | 'cjs'): void {
  assert.match(resolved, new RegExp(`dist[/\\\\]${half}[/\\\\]index\\.js$`));
  for (const name of NAMES) assert.equal(types[name], 'function', `${name} is a function`);
  assert.equal(formatted, 'data: x\n\n');
}

test('import from "serve-sse" loads the ESM build', async () => {
  const script = `
    import { serveSse, formatEvent, sendEvent, defaultOnConnect } from 'serve-sse';
    const m = { serveSse, formatEvent, sendEvent, defaultOnConnect };
    const types = Object.fromEntries(Object.entries(m).map(([name, value]) => [name, typeof value]));
    const resolved = new URL(import.meta.resolve('serve-sse')).pathname;
    console.log(JSON.stringify({ resolved, types, formatted: formatEvent({ data: 'x' }) }));`;
  check(await report(['--input-type=module', '-e', script]), 'esm');
});

test('require("serve-sse") loads the CommonJS build', async () => {
  const script = `
    const m = require('serve-sse');
    const types = Object.fromEntries(${JSON.stringify(NAMES)}.map((name) => [name, typeof m[name]]));
    const resolved = require.resolve('serve-sse');
    console.log(JSON.stringify({ resolved, types, formatted: m.formatEvent({ data: 'x' }) }));`;
  check(await report(['--input-type=commonjs', '-e', script]), 'cjs');
});

test('the core has no runtime dependencies', () => {
  assert.deepEqual(Object.keys(pkg.dependencies ?? {}), []);
});

test('bin.serve-sse is an executable script in dist with a node shebang', () => {
  const bin = pkg.bin?.['serve-sse'];
  assert.ok(bin !== undefined, 'package.json has bin.serve-sse');
  assert.match(bin, /^(\.\/)?dist\//);
  const path = join(ROOT, bin);
  assert.ok(existsSync(path), `${bin} exists`);
  assert.equal(readFileSync(path, 'utf8').split('\n', 1)[0], '#!/usr/bin/env node');
  assert.ok((statSync(path).mode & 0o111) !== 0, `${bin} is executable`);
});

test('type declarations exist for both halves', () => {
  const { import: esm, require: cjs } = pkg.exports['.'] ?? assert.fail('package.json has exports["."]');
  for (const types of [esm.types, cjs.types]) {
    assert.match(types, /\.d\.ts$/);
    assert.ok(existsSync(join(ROOT, types)), `${types} exists`);
  }
  assert.notEqual(esm.types, cjs.types);
});
