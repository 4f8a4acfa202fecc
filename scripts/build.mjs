// Builds dist/esm (ES modules) and dist/cjs (CommonJS), each with declarations. Two plain tsc runs:
// no bundler, so dist mirrors src file for file. The build goes to a temporary folder that
// replaces dist/ at the end, so a benchmark or demo running from dist/ never sees it half-built.
//
// `--if-stale` (what `npm start` uses) skips the build when dist/ is newer than every input, so
// that starting the demo twice does not compile twice.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const STAMP = 'dist/.built';
const INPUTS = ['src', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.cjs.json', 'scripts/build.mjs'];

/** The newest modification time among the build's inputs, ms. */
function newestInput(paths) {
  let newest = 0;
  for (const path of paths) {
    const stat = statSync(path);
    const time = stat.isDirectory() ? newestInput(readdirSync(path).map((name) => join(path, name))) : stat.mtimeMs;
    if (time > newest) newest = time;
  }
  return newest;
}

const started = new Date();
if (process.argv.includes('--if-stale') && existsSync(STAMP) && statSync(STAMP).mtimeMs >= newestInput(INPUTS)) process.exit(0);

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
// Per process, so two builds started at once (helpers, an editor) do not trip over each other.
const staging = `dist.building-${process.pid}`;
rmSync(staging, { recursive: true, force: true });
for (const [project, half] of [['tsconfig.build.json', 'esm'], ['tsconfig.cjs.json', 'cjs']]) {
  execFileSync(process.execPath, [tsc, '-p', project, '--outDir', `${staging}/${half}`], { stdio: 'inherit' });
}
// The package is "type": "module"; this marks the CommonJS half as what it is.
writeFileSync(`${staging}/cjs/package.json`, '{\n  "type": "commonjs"\n}\n');
chmodSync(`${staging}/esm/cli/main.js`, 0o755);
// Stamped with the start: a source edited while tsc ran makes the next --if-stale build again.
writeFileSync(`${staging}/.built`, `${started.toISOString()}\n`);
utimesSync(`${staging}/.built`, started, started);
rmSync('dist', { recursive: true, force: true });
try {
  renameSync(staging, 'dist');
} catch (error) {
  // Another build finished first: its dist is as good as ours.
  rmSync(staging, { recursive: true, force: true });
  if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
}
