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
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
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

/** The framework adapters: subpath, the framework it serves, and the functions it exports. */
const ADAPTERS = [
  { subpath: 'fastify', framework: 'fastify', names: ['fastifySse', 'fastifyRequestOf'] },
  { subpath: 'koa', framework: 'koa', names: ['koaSse', 'koaContextOf'] },
] as const;

for (const { subpath, framework, names } of ADAPTERS) {
  const specifier = `serve-sse/${subpath}`;

  test(`import from "${specifier}" loads the ESM build, and its route serves a handler of the same package`, async () => {
    const script = `
      import * as m from '${specifier}';
      import { serveSse } from 'serve-sse';
      const types = Object.fromEntries(${JSON.stringify(names)}.map((name) => [name, typeof m[name]]));
      const resolved = new URL(import.meta.resolve('${specifier}')).pathname;
      console.log(JSON.stringify({ resolved, types, formatted: typeof m.${names[0]}(serveSse(() => {})) }));`;
    const { resolved, types, formatted } = await report(['--input-type=module', '-e', script]);
    assert.match(resolved, new RegExp(`dist/esm/adapters/${subpath}\\.js$`));
    for (const name of names) assert.equal(types[name], 'function', `${name} is a function`);
    assert.equal(formatted, 'function');
  });

  test(`require("${specifier}") loads the CommonJS build, without loading ${framework}`, async () => {
    const script = `
      const m = require('${specifier}');
      const types = Object.fromEntries(${JSON.stringify(names)}.map((name) => [name, typeof m[name]]));
      const loaded = Object.keys(require.cache).filter((path) => path.includes('/node_modules/'));
      console.log(JSON.stringify({ resolved: require.resolve('${specifier}'), types, formatted: JSON.stringify(loaded) }));`;
    const { resolved, types, formatted } = await report(['--input-type=commonjs', '-e', script]);
    assert.match(resolved, new RegExp(`dist/cjs/adapters/${subpath}\\.js$`));
    for (const name of names) assert.equal(types[name], 'function', `${name} is a function`);
    assert.deepEqual(JSON.parse(formatted), [], 'no package from node_modules is loaded');
  });

  test(`the ESM build of "${specifier}" imports nothing but its own files and node: modules`, () => {
    const source = readFileSync(join(ROOT, pkg.exports[`./${subpath}`]!.import.types.replace(/\.d\.ts$/, '.js')), 'utf8');
    const imported = [...source.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]/g)].map((m) => m[1] ?? m[2]);
    assert.ok(imported.length > 0, 'it imports the core');
    for (const name of imported) assert.match(name!, /^(\.{1,2}\/|node:)/, `${name} is not a runtime dependency`);
  });

  test(`${framework} is an optional peer dependency, not a dependency`, () => {
    assert.equal(pkg.dependencies?.[framework], undefined);
    assert.ok(pkg.peerDependencies?.[framework] !== undefined, `peerDependencies.${framework}`);
    assert.equal(pkg.peerDependenciesMeta?.[framework]?.optional, true);
  });
}

test('every subpath export has type declarations for both halves, on disk', () => {
  for (const [subpath, entry] of Object.entries(pkg.exports)) {
    if (typeof entry === 'string') continue;
    for (const types of [entry.import.types, entry.require.types]) {
      assert.ok(existsSync(join(ROOT, types)), `${subpath}: ${types} exists`);
      assert.ok(existsSync(join(ROOT, types.replace(/\.d\.ts$/, '.js'))), `${subpath}: its code exists`);
    }
  }
});
