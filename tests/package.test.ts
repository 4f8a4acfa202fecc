/**
 * The built package as users get it: imported by its name (self-reference through the `exports`
 * map) from ESM and CommonJS, each in a fresh Node process, plus the package.json contract.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve as resolvePath, sep } from 'node:path';
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

// ---------------------------------------------------------------------------------------------
// serve-sse/client: the browser client, also for Node. Each half is imported by its name, runs
// (a fetch that answers one event), and loads nothing but the client's own files.

/**
 * Prints what the client of one half exports and the data of an event it got, plus `loaded`
 * (an expression: the files it loaded, where the half can tell).
 */
const clientRun = (loaded: string): string => `
  const source = new m.EventSource('http://127.0.0.1:9/events', {
    fetch: async () => new Response('data: from the built client\\n\\n', { headers: { 'content-type': 'text/event-stream' } }),
  });
  source.onmessage = (event) => {
    source.close();
    console.log(JSON.stringify({
      resolved,
      types: { EventSource: typeof m.EventSource, SseErrorEvent: typeof m.SseErrorEvent },
      formatted: JSON.stringify({ data: event.data, readyState: source.readyState, loaded: ${loaded} }),
    }));
  };`;

test('import from "serve-sse/client" loads the ESM build of the client alone, and it works', async () => {
  const script = `
    import * as m from 'serve-sse/client';
    const resolved = new URL(import.meta.resolve('serve-sse/client')).pathname;
    ${clientRun('undefined')}`;
  const { resolved, types, formatted } = await report(['--input-type=module', '-e', script]);
  assert.match(resolved, /dist\/esm\/client\/index\.js$/);
  assert.deepEqual(types, { EventSource: 'function', SseErrorEvent: 'function' });
  // What an ES module imports is not listed at run time: the last test reads the files instead.
  assert.deepEqual(JSON.parse(formatted), { data: 'from the built client', readyState: 2 });
});

test('require("serve-sse/client") loads the CommonJS build of the client alone, and it works', async () => {
  const script = `
    const m = require('serve-sse/client');
    const resolved = require.resolve('serve-sse/client');
    const loaded = Object.keys(require.cache).map((path) => path.replace(/\\\\/g, '/')).filter((path) => !/\\/dist\\/cjs\\/client\\/[^/]+\\.js$/.test(path));
    ${clientRun('loaded')}`;
  const { resolved, types, formatted } = await report(['--input-type=commonjs', '-e', script]);
  assert.match(resolved, /dist[/\\]cjs[/\\]client[/\\]index\.js$/);
  assert.deepEqual(types, { EventSource: 'function', SseErrorEvent: 'function' });
  assert.deepEqual(JSON.parse(formatted), { data: 'from the built client', readyState: 2, loaded: [] }, 'only dist/cjs/client files are loaded');
});

test('the client halves import nothing from node:, no package, nothing outside the client folder but the event map', () => {
  const client = pkg.exports['./client'] ?? assert.fail('package.json has exports["./client"]');
  for (const [half, types] of [['esm', client.import.types], ['cjs', client.require.types]] as const) {
    const dir = dirname(join(ROOT, types));
    assert.match(dir.replaceAll('\\', '/'), new RegExp(`dist/${half}/client$`));
    const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.js'));
    assert.ok(files.includes('index.js') && files.length >= 4, `${half}: ${files}`);
    const allowed = join(ROOT, 'dist', half, 'event-map.js');
    let count = 0;
    for (const file of files) {
      const path = join(dir, file);
      const source = readFileSync(path, 'utf8');
      const specifiers = [...source.matchAll(/\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]|\brequire\s*\(\s*['"]([^'"]+)['"]/g)].map((m) => (m[1] ?? m[2])!);
      for (const specifier of specifiers) {
        count++;
        assert.match(specifier, /^\.{1,2}\//, `${half}/client/${file} imports ${specifier}: not one of its own files`);
        const target = resolvePath(dirname(path), specifier);
        assert.ok(target.startsWith(dir + sep) || target === allowed, `${half}/client/${file} imports ${specifier}, outside the client folder`);
        assert.ok(existsSync(target), `${half}/client/${file} imports ${specifier}, which is not there`);
      }
    }
    assert.ok(count >= 4, `${half}: the files import one another (${count} imports seen)`);
  }
});
