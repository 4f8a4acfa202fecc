/**
 * The hub server's own errors: repeated failures are logged at a bounded rate (with how many
 * were left out), and server errors are logged, never thrown.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { RepeatedLog } from '../../src/server/http/repeated-log.js';
import { createHubServer } from '../../src/server/server.js';
import { waitFor } from '../helpers.js';
import { closeAll, PUBLISHER_KEY, publishJson, publisherToken, startHub } from './hub-helpers.js';

after(closeAll);

describe('repeated failures', () => {
  test('a failing hub: the first failed publish logs at once, the rest are counted into one line per interval', async () => {
    const hub = await startHub({ publisherKey: PUBLISHER_KEY, errorLogInterval: 2000 });
    hub.hub.publish = () => Promise.reject(new Error('the backplane is not connected'));
    const token = await publisherToken(['*']);
    const failedLines = (): Array<Record<string, unknown>> => hub.logs.filter((line) => line.msg === 'publish failed');

    const first = await publishJson(hub, token, { topic: 'a', data: 1 });
    assert.equal(first.status, 503);
    assert.match(first.body, /the backplane is not connected/);
    assert.equal(failedLines().length, 1, 'the first failure logs at once');
    for (let n = 0; n < 49; n++) assert.equal((await publishJson(hub, token, { topic: 'a', data: n })).status, 503);
    assert.equal(failedLines().length, 1, '49 more within the interval: not one more line');

    await waitFor(() => failedLines().length === 2, 4000, "the summary line");
    const summary = failedLines()[1]!;
    assert.equal(summary.suppressed, 49);
    assert.equal((summary.err as { message?: string }).message, 'the backplane is not connected', 'with the latest error');
    assert.equal(summary.level, 50, 'error');
    // Nothing more to report: no more lines.
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(failedLines().length, 2);
  });

  test('RepeatedLog: one line at once per kind, then at most one per interval with the count, the rest at flush()', async () => {
    const lines: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const log = new RepeatedLog((fields, message) => lines.push({ fields, message }), 100);
    log.report('a', { n: 1 }, 'kind a');
    log.report('b', { n: 1 }, 'kind b');
    log.report('a', { n: 2 }, 'kind a');
    log.report('a', { n: 3 }, 'kind a');
    assert.deepEqual(lines.map((line) => [line.message, line.fields.n, line.fields.suppressed]), [['kind a', 1, undefined], ['kind b', 1, undefined]]);
    await waitFor(() => lines.length === 3, 1000);
    assert.deepEqual([lines[2]!.message, lines[2]!.fields.n, lines[2]!.fields.suppressed], ['kind a', 3, 2]);
    // Within the interval that summary opened, a new failure waits for the next line.
    log.report('a', { n: 4 }, 'kind a');
    assert.equal(lines.length, 3);
    log.flush();
    assert.deepEqual([lines[3]!.message, lines[3]!.fields.n, lines[3]!.fields.suppressed], ['kind a', 4, 1]);
    log.flush();
    assert.equal(lines.length, 4, 'nothing left to flush');
    log.stop();
  });
});

describe('server errors', () => {
  test('after start-up, one error listener: the server logs errors and never throws', async () => {
    const hub = await startHub({ errorLogInterval: 100 });
    assert.equal(hub.server.listenerCount('error'), 1);
    assert.doesNotThrow(() => hub.server.emit('error', new Error('x')));
    assert.doesNotThrow(() => hub.server.emit('error', new Error('x')));
    const lines = (): Array<Record<string, unknown>> => hub.logs.filter((line) => line.msg === 'server error');
    assert.equal(lines().length, 1);
    assert.equal((lines()[0]!.err as { message?: string }).message, 'x');
    await waitFor(() => lines().length === 2, 1000, 'the second, counted');
    assert.equal(lines()[1]!.suppressed, 1);
  });

  test('a port in use: start-up rejects with it and leaves no listener behind', async () => {
    const first = await startHub();
    const { port } = new URL(first.url);
    await assert.rejects(createHubServer({ port: Number(port), host: '127.0.0.1', logLevel: 'silent' }), { code: 'EADDRINUSE' });
  });
});
