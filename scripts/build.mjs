// Builds dist/esm (ES modules) and dist/cjs (CommonJS), each with declarations. Two plain tsc runs:
// no bundler, so dist mirrors src file for file. The build goes to a temporary folder that
// replaces dist/ at the end, so a benchmark or demo running from dist/ never sees it half-built.
import { execFileSync } from 'node:child_process';
import { chmodSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

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
rmSync('dist', { recursive: true, force: true });
try {
  renameSync(staging, 'dist');
} catch (error) {
  // Another build finished first: its dist is as good as ours.
  rmSync(staging, { recursive: true, force: true });
  if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
}
