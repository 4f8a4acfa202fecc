/**
 * Debian's Chromium, driven by playwright-core, for the browser tests. Missing, it fails the test
 * under CI=true and otherwise skips it with a loud warning: a developer without Chromium can still
 * run the rest, but CI never passes without the browser.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Launches Chromium, or resolves `undefined` after skipping `t` (what: what goes untested). */
export async function launchChromium(t: TestContext, what: string): Promise<Browser | undefined> {
  if (!existsSync(CHROMIUM)) {
    const message = `${CHROMIUM} is missing: ${what} was not tested in a browser (apt-get install chromium)`;
    if (process.env.CI === 'true') assert.fail(`${message}; CI=true, so this is a failure`);
    process.stderr.write(`\n*** WARNING: ${message} ***\n\n`);
    t.skip(message);
    return undefined;
  }
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 30_000 });
}
