/** The real `serve-sse` bin from dist, and its demo page in a real browser (Debian's Chromium). */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../chromium.js';

const BIN = fileURLToPath(new URL('../../dist/esm/cli/main.js', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin to completion; the timeout kills it so that a hang fails instead of stalling the run. */
async function run(args: string[], timeout = 10_000): Promise<Result> {
  const child = spawn(process.execPath, [BIN, ...args], { timeout, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/** Starts `serve-sse demo` and resolves with its URL, read from the line it prints once listening. */
function startDemo(child: ChildProcess, timeout = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => done(new Error(`no URL from the demo within ${timeout} ms; stdout: ${stdout}; stderr: ${stderr}`)), timeout);
    const onExit = (code: number | null): void => done(new Error(`the demo exited (${code}) before listening; stderr: ${stderr}`));
    const done = (error: Error | undefined, url?: string): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      if (error === undefined) resolve(url as string);
      else reject(error);
    };
    child.on('exit', onExit);
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const match = /serve-sse demo listening on (http:\/\/\S+)/.exec(stdout);
      if (match?.[1] !== undefined) done(undefined, match[1]);
    });
  });
}

/** Resolves with the exit code, or rejects if the process is still running after `ms`. */
async function exitCode(child: ChildProcess, ms: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit', { signal: AbortSignal.timeout(ms) })) as [number | null];
  return code;
}

test('serve-sse --help prints the usage and exits 0', async () => {
  const { code, stdout } = await run(['--help']);
  assert.equal(code, 0);
  assert.match(stdout, /^Usage: serve-sse <command>/);
  assert.match(stdout, /demo/);
});

test('an unknown command exits 2 and names it', async () => {
  const { code, stderr } = await run(['frobnicate']);
  assert.equal(code, 2);
  assert.match(stderr, /unknown command "frobnicate"/);
});

test('demo --port abc exits 2 with a message naming --port', async () => {
  const { code, stderr } = await run(['demo', '--port', 'abc']);
  assert.equal(code, 2);
  assert.match(stderr, /--port/);
  assert.match(stderr, /"abc"/);
});

test('the demo page lists the events in Chromium, then "Server unavailable" once the demo stops', async (t) => {
  const browser = await launchChromium(t, 'the demo page');
  if (browser === undefined) return;
  const demo = spawn(process.execPath, [BIN, 'demo', '--port', '0', '--host', '127.0.0.1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const url = await startDemo(demo);
    const page = await browser.newPage();
    page.setDefaultTimeout(10_000);
    await page.goto(url, { timeout: 10_000 });
    const items = (): Promise<string[]> => page.$$eval('#events li', (lis) => lis.map((li) => li.textContent ?? ''));
    const waitForItem = (text: string): Promise<unknown> =>
      page.waitForFunction(
        (wanted) => Array.from(document.querySelectorAll('#events li')).some((li) => li.textContent === wanted),
        text,
        { timeout: 10_000 },
      );

    // Events come every 2 s, so the first one is due about 2 s after the connection opens.
    await waitForItem('Hello World! 1');
    assert.deepEqual((await items()).slice(0, 2), ['Server connected :)', 'Hello World! 1']);

    demo.kill('SIGTERM');
    assert.equal(await exitCode(demo, 5_000), 0, 'the demo exits with code 0 on SIGTERM');
    await waitForItem('Server unavailable :(');
    const after = await items();
    const firstError = after.indexOf('Server unavailable :(');
    assert.ok(firstError > after.indexOf('Hello World! 1'), `the error comes after the events: ${JSON.stringify(after)}`);
    assert.ok(after.slice(firstError).every((item) => item === 'Server unavailable :('), `no event after the error: ${JSON.stringify(after)}`);
  } finally {
    await browser.close();
    if (demo.exitCode === null && demo.signalCode === null) demo.kill('SIGKILL');
  }
});

test('--version prints the package version', async () => {
  const { version } = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string };
  for (const args of [['--version'], ['hub', '--version']]) {
    const { code, stdout } = await run(args);
    assert.equal(code, 0, args.join(' '));
    assert.equal(stdout, `${version}\n`, args.join(' '));
  }
});

test('demo on a busy port exits 1 with one line and no usage text', async () => {
  const first = spawn(process.execPath, [BIN, 'demo', '--port', '0', '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const port = new URL(await startDemo(first)).port;
    const { code, stdout, stderr } = await run(['demo', '--port', port, '--host', '127.0.0.1']);
    assert.equal(code, 1);
    assert.equal(stdout, '');
    assert.equal(stderr, `serve-sse demo: cannot listen: port ${port} is in use (--port picks another)\n`);
  } finally {
    first.kill('SIGKILL');
  }
});

test('SIGINT ends open streams with a retry hint, cleanly, and exits 0', async () => {
  const demo = spawn(process.execPath, [BIN, 'demo', '--port', '0', '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const url = await startDemo(demo);
    const response = await fetch(new URL("/events", url), { signal: AbortSignal.timeout(10_000) });
    const reader = response.body!.getReader();
    const first = await reader.read();
    assert.equal(first.done, false, 'the stream opened');
    demo.kill('SIGINT');
    let rest = '';
    const decoder = new TextDecoder();
    // A clean end resolves { done: true }; a cut stream rejects.
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += decoder.decode(chunk.value, { stream: true });
    assert.match(rest, /^retry: ?2000$/m, `the stream's last bytes: ${JSON.stringify(rest)}`);
    assert.equal(await exitCode(demo, 5_000), 0);
  } finally {
    if (demo.exitCode === null && demo.signalCode === null) demo.kill('SIGKILL');
  }
});
