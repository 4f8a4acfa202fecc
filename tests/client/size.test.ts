/**
 * `serve-sse/client` as a page loads it (bench/client-size.mjs: esbuild bundle, minified, gzip -9)
 * stays within the spec's budget (SPEC §6c: 5 KiB), and is plain browser code: built from the
 * client's own files (and the shared event map) alone, with no Node built-in, no require, no
 * Node global.
 */
import assert from 'node:assert/strict';
import { relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { clientBundle, clientSize, CLIENT_SIZE_BUDGET } from '../../bench/client-size.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test(`minified and gzipped, the client is at most CLIENT_SIZE_BUDGET bytes`, async (t) => {
  assert.equal(CLIENT_SIZE_BUDGET, 5120, 'the budget is the spec\'s 5 KiB');
  const { minified, gzipped } = await clientSize();
  t.diagnostic(`serve-sse/client: ${minified} bytes minified, ${gzipped} gzipped (budget ${CLIENT_SIZE_BUDGET}, ${((100 * gzipped) / CLIENT_SIZE_BUDGET).toFixed(0)} % of it)`);
  // Not a measurement of nothing: the parser, the loop and the class are in it.
  assert.ok(minified > 2000, `${minified} bytes minified is too little to be the client`);
  assert.ok(gzipped < minified);
  assert.ok(gzipped <= CLIENT_SIZE_BUDGET, `${gzipped} bytes gzipped, over the budget of ${CLIENT_SIZE_BUDGET}`);
});

test('the bundle is made of the client folder and the event map only, and imports nothing', async () => {
  const { metafile } = await clientBundle();
  // esbuild names inputs relative to the working folder.
  const inputs = Object.keys(metafile.inputs).map((path) => relative(ROOT, resolve(process.cwd(), path)).replaceAll('\\', '/'));
  assert.ok(inputs.includes('src/client/parse.ts') && inputs.includes('src/client/event-source.ts'), `inputs: ${inputs}`);
  for (const input of inputs) assert.match(input, /^src\/(client\/[^/]+|event-map)\.ts$/, `${input} is not the client's`);
  for (const [path, { imports }] of Object.entries(metafile.inputs)) {
    for (const { path: imported, external } of imports) assert.ok(!external && !imported.startsWith('node:'), `${path} imports ${imported}`);
  }
  const [output] = Object.values(metafile.outputs);
  assert.deepEqual(output?.imports, [], 'the bundle imports nothing');
});

test('the bundle has no node: specifier, no require, no Node global', async () => {
  const code = new TextDecoder().decode((await clientBundle()).code);
  assert.ok(code.includes('EventSource'), 'it is the client');
  assert.doesNotMatch(code, /node:/);
  assert.doesNotMatch(code, /\brequire\s*\(/);
  assert.doesNotMatch(code, /\bimport\s*\(|\bimport\s*[\w{*]|\bfrom\s*["']/, 'no import of any kind');
  // Minified, local names are short: these words can only be Node's globals.
  assert.doesNotMatch(code, /\b(process|Buffer|__dirname|__filename|global|setImmediate)\b/);
});
