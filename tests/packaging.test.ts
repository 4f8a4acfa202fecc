/**
 * The two packages as users install them: `npm pack` of serve-sse and of packages/hub
 * (serve-sse-hub), installed into fresh projects. serve-sse alone brings no other package, and
 * its bin answers --version and `hub --help` yet names serve-sse-hub for what needs the server's
 * dependencies; with serve-sse-hub the hub starts (both bins) and takes a token from
 * `serve-sse token`. Published source maps point at sources that are in the package.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };
const hubPackage = JSON.parse(readFileSync(join(ROOT, 'packages/hub/package.json'), 'utf8')) as { name: string; version: string; dependencies: Record<string, string> };

let work = '';
let tarballs: { library: string; hub: string };

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await execFileAsync(NPM, args, { cwd, timeout: 120_000, env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } });
  return stdout;
}

async function project(name: string, packages: string[]): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true }));
  // The cache holds every dependency after `npm ci`; the registry is asked only for what it lacks.
  await npm(['install', '--prefer-offline', '--no-package-lock', ...packages], dir);
  return dir;
}

async function bin(dir: string, name: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(join(dir, 'node_modules/.bin', name), args, { cwd: dir, timeout: 15_000, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'serve-sse-packaging-'));
  const packed = (await npm(['pack', '--silent', '--pack-destination', work], ROOT)).trim().split('\n').pop()!;
  const packedHub = (await npm(['pack', '--silent', '--pack-destination', work], join(ROOT, 'packages/hub'))).trim().split('\n').pop()!;
  tarballs = { library: join(work, packed), hub: join(work, packedHub) };
});
after(() => rmSync(work, { recursive: true, force: true }));

test('serve-sse-hub pins what the root tests with, and the same serve-sse version', () => {
  assert.equal(hubPackage.name, 'serve-sse-hub');
  assert.equal(hubPackage.version, root.version);
  for (const [name, version] of Object.entries(hubPackage.dependencies)) {
    if (name === 'serve-sse') assert.equal(version, root.version);
    else assert.equal(version, root.devDependencies[name], `${name}: the hub package and the tests use one version`);
  }
});

test('serve-sse alone: no other package installed; --version and hub --help work; hub and token name serve-sse-hub', async () => {
  const dir = await project('library-only', [tarballs.library]);
  assert.deepEqual(readdirSync(join(dir, 'node_modules')).filter((name) => !name.startsWith('.')), ['serve-sse']);
  assert.deepEqual(await bin(dir, 'serve-sse', ['--version']), { code: 0, stdout: `${root.version}\n`, stderr: '' });
  const help = await bin(dir, 'serve-sse', ['hub', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /--publisher-key KEY/);
  for (const args of [['hub', '--port', '0'], ['token', '--role', 'publisher', '--topic', 'a', '--key', 'k']]) {
    const { code, stdout, stderr } = await bin(dir, 'serve-sse', args);
    assert.equal(code, 1, args.join(' '));
    assert.equal(stdout, '');
    assert.match(stderr, /needs the hub server's dependencies \((pino|jose) is missing\): npm install serve-sse-hub\n$/);
  }
});

test('with serve-sse-hub: `serve-sse hub` and `serve-sse-hub` start, and a token from `serve-sse token` publishes', async () => {
  const dir = await project('with-hub', [tarballs.library, tarballs.hub]);
  const key = 'packaging-test-key-0123456789abcdef';
  const token = await bin(dir, 'serve-sse', ['token', '--role', 'publisher', '--topic', 'news'], { SERVE_SSE_PUBLISHER_KEY: key });
  assert.equal(token.code, 0, token.stderr);
  for (const [name, args] of [['serve-sse', ['hub']], ['serve-sse-hub', []]] as const) {
    const child = spawn(join(dir, 'node_modules/.bin', name), [...args, '--port', '0', '--host', '127.0.0.1'], {
      cwd: dir,
      env: { ...process.env, SERVE_SSE_PUBLISHER_KEY: key },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      const url = await new Promise<string>((resolveUrl, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: no "listening" line in 15 s: ${stdout}`)), 15_000);
        child.stdout.on('data', () => {
          const found = /"url":"(http:[^"]+)"/.exec(stdout)?.[1];
          if (found !== undefined) {
            clearTimeout(timer);
            resolveUrl(found);
          }
        });
        child.on('exit', (code) => reject(new Error(`${name} exited (${code}): ${stdout}`)));
      });
      const published = await fetch(`${url}/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token.stdout.trim()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'news', data: 'hello' }),
      });
      assert.equal(published.status, 200, `${name}: ${await published.text()}`);
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  }
});

test('every published source map points at sources inside the package', async () => {
  const listing = JSON.parse(await npm(['pack', '--dry-run', '--json'], ROOT)) as Array<{ files: Array<{ path: string }> }>;
  const files = new Set(listing[0]!.files.map((file) => file.path));
  const maps = [...files].filter((path) => path.endsWith('.map'));
  assert.ok(maps.length > 0, 'the package has source maps');
  for (const map of maps) {
    const { sources } = JSON.parse(readFileSync(join(ROOT, map), 'utf8')) as { sources: string[] };
    for (const source of sources) {
      const path = resolve('/', dirname(map), source).slice(1);
      assert.ok(files.has(path) && existsSync(join(ROOT, path)), `${map} names ${source}, which the package does not hold`);
    }
  }
});
