// Builds dist/esm (ES modules) and dist/cjs (CommonJS), each with declarations. Two plain tsc runs:
// no bundler, so dist mirrors src file for file.
import { execFileSync } from 'node:child_process';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync('dist', { recursive: true, force: true });
for (const project of ['tsconfig.build.json', 'tsconfig.cjs.json']) {
  execFileSync(process.execPath, [tsc, '-p', project], { stdio: 'inherit' });
}
// The package is "type": "module"; this marks the CommonJS half as what it is.
writeFileSync('dist/cjs/package.json', '{\n  "type": "commonjs"\n}\n');
chmodSync('dist/esm/cli/main.js', 0o755);
