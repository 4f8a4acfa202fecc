/**
 * examples/client.mjs and its page, as a user runs them: three tabs of one browser share one
 * connection, every tab shows the prices, the token travels in a header, and SIGTERM ends it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../chromium.js';
import { waitFor } from '../helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let child: ChildProcess | undefined;
after(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
});

function start(): Promise<string> {
  child = spawn(process.execPath, ['examples/client.mjs'], { cwd: ROOT, env: { ...process.env, PORT: '0', HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const started = child;
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`no URL within 10 s; stderr: ${stderr}`)), 10_000);
    started.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    started.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const url = /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url !== undefined) {
        clearTimeout(timer);
        resolve(url);
      }
    });
    started.on('exit', (code) => reject(new Error(`exited (${code}); stderr: ${stderr}`)));
  });
}

test('examples/client.mjs: three tabs, one connection, prices in every tab; SIGTERM exits 0', async (t) => {
  const browser = await launchChromium(t, 'the client example');
  if (browser === undefined) return;
  try {
    const url = await start();
    const context = await browser.newContext();
    const pages = await Promise.all([0, 1, 2].map(() => context.newPage()));
    for (const page of pages) await page.goto(url);
    for (const page of pages) {
      await page.waitForFunction(() => document.getElementById('state')?.textContent === 'open', undefined, { timeout: 10_000 });
      await page.waitForFunction(() => document.querySelectorAll('#log li').length >= 2, undefined, { timeout: 10_000 });
      assert.match(String(await page.textContent('#price')), /^\d+\.\d\d$/);
    }
    const stats = async (): Promise<{ connections: number }> => (await fetch(`${url}stats`)).json() as Promise<{ connections: number }>;
    await waitFor(async () => (await stats()).connections === 1, 5000, 'one connection for the three tabs');
    // The tabs show the same events: the one holding the connection relays them.
    const firsts = await Promise.all(pages.map((page) => page.evaluate(() => (window as unknown as { source: { lastEventId: string } }).source.lastEventId)));
    assert.ok(firsts.every((id) => id !== ''), JSON.stringify(firsts));
    await context.close();
    const exited = once(child!, 'exit', { signal: AbortSignal.timeout(5000) });
    child!.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
  } finally {
    await browser.close();
  }
});
