// The size of `serve-sse/client` as a page gets it: src/client/index.ts bundled and minified by
// esbuild (ESM, ES2022, browser platform), then gzipped at level 9. Measured here only: the
// benchmark prints it and tests/client/size.test.ts holds it to the spec's budget.
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

/** The budget, bytes minified and gzipped (SPEC §6c: 5 KiB). */
export const CLIENT_SIZE_BUDGET = 5120;

/** The minified bundle, and esbuild's metafile (its inputs and their imports). */
export async function clientBundle() {
  const { outputFiles, metafile } = await build({
    entryPoints: [fileURLToPath(new URL('../src/client/index.ts', import.meta.url))],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  return { code: outputFiles[0].contents, metafile };
}

/** @returns {Promise<{ minified: number, gzipped: number }>} bytes */
export async function clientSize() {
  const { code } = await clientBundle();
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}
