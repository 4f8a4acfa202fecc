/**
 * `serve-sse token` from dist: the token it prints is checked by jose on its own (claims, lifetime,
 * algorithm) and accepted by a real hub server configured with the same key, for its own endpoints
 * and for Mercure, and refused for a topic it does not grant; mistakes exit 2 and name the flag.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeProtectedHeader, importSPKI, jwtVerify } from 'jose';
import { closeAll, PUBLISHER_KEY, publishJson, send, startHub, SUBSCRIBER_KEY } from '../server/hub-helpers.js';

const BIN = fileURLToPath(new URL('../../dist/esm/cli/main.js', import.meta.url));
after(closeAll);

function token(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const clean: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^(SERVE_SSE_|MERCURE_)/.test(name)) clean[name] = value;
  const { status, stdout, stderr } = spawnSync(process.execPath, [BIN, 'token', ...args], { encoding: 'utf8', timeout: 10_000, env: { ...clean, ...env } });
  return { code: status, stdout, stderr };
}

test('a publisher token from the environment key: sse and mercure claims, exp from --ttl, accepted by the hub for its topics only', async () => {
  const before = Math.floor(Date.now() / 1000);
  const { code, stdout, stderr } = token(['--role', 'publisher', '--topic', 'news', '--topic', 'https://example.com/books/{id}', '--ttl', '15m', '--sub', 'backend'], {
    SERVE_SSE_PUBLISHER_KEY: PUBLISHER_KEY,
  });
  assert.equal(code, 0, stderr);
  const jwt = stdout.trim();
  assert.equal(stdout, `${jwt}\n`, 'the token and nothing else on stdout');
  const { payload, protectedHeader } = await jwtVerify(jwt, new TextEncoder().encode(PUBLISHER_KEY), { algorithms: ['HS256'] });
  assert.equal(protectedHeader.alg, 'HS256');
  assert.deepEqual(payload.sse, { publish: ['news', 'https://example.com/books/{id}'] });
  assert.deepEqual(payload.mercure, { publish: ['news', 'https://example.com/books/{id}'] });
  assert.equal(payload.sub, 'backend');
  assert.ok(payload.iat! >= before && payload.iat! <= before + 5, `iat ${payload.iat}`);
  assert.equal(payload.exp! - payload.iat!, 900);

  const hub = await startHub({ publisherKey: PUBLISHER_KEY });
  assert.equal((await publishJson(hub, jwt, { topic: 'news', data: 'x' })).status, 200);
  assert.equal((await publishJson(hub, jwt, { topic: 'sports', data: 'x' })).status, 403);
  const mercure = await send(`${hub.url}/.well-known/mercure`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=hello',
  });
  assert.equal(mercure.status, 200, mercure.body);
});

test('a subscriber token (--key given) lets a subscriber in for its topics, and not for others', async () => {
  const { code, stdout, stderr } = token(['--role', 'subscriber', '--topic', 'news', '--key', SUBSCRIBER_KEY]);
  assert.equal(code, 0, stderr);
  const hub = await startHub({ publisherKey: PUBLISHER_KEY, subscriberKey: SUBSCRIBER_KEY });
  const allowed = new AbortController();
  const response = await fetch(`${hub.url}/events?topic=news`, { headers: { authorization: `Bearer ${stdout.trim()}` }, signal: allowed.signal });
  assert.equal(response.status, 200);
  allowed.abort();
  const refused = await send(`${hub.url}/events?topic=sports`, { headers: { authorization: `Bearer ${stdout.trim()}` } });
  assert.equal(refused.status, 403);
});

test('RS256 with --private-key: the hub holding the public key accepts it', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const dir = mkdtempSync(join(tmpdir(), 'serve-sse-token-'));
  try {
    const file = join(dir, 'key.pem');
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const spki = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const { code, stdout, stderr } = token(['--role', 'publisher', '--topic', '*', '--private-key', file], { SERVE_SSE_PUBLISHER_ALG: 'RS256' });
    assert.equal(code, 0, stderr);
    const jwt = stdout.trim();
    assert.equal(decodeProtectedHeader(jwt).alg, 'RS256');
    await jwtVerify(jwt, await importSPKI(spki, 'RS256'));
    const hub = await startHub({ publisherKey: spki, publisherAlg: 'RS256' });
    assert.equal((await publishJson(hub, jwt, { topic: 'anything', data: 'x' })).status, 200);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mistakes exit 2 naming what is wrong, and print no token', () => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['--topic', 'a', '--key', 'k'], {}, /--role must be publisher or subscriber/],
    [['--role', 'admin', '--topic', 'a', '--key', 'k'], {}, /--role must be publisher or subscriber, got "admin"/],
    [['--role', 'publisher', '--key', 'k'], {}, /--topic is required/],
    [['--role', 'publisher', '--topic', 'a'], {}, /no publisher key: give --key, or set SERVE_SSE_PUBLISHER_KEY/],
    [['--role', 'publisher', '--topic', 'a', '--key', 'k', '--ttl', 'soon'], {}, /--ttl must be a duration/],
    [['--role', 'publisher', '--topic', 'a', '--key', 'k', '--alg', 'none'], {}, /--alg must be one of/],
    [['--role', 'publisher', '--topic', 'a', '--alg', 'RS256', '--key', 'k'], {}, /RS256 signs with a private key: give --private-key/],
    [['--role', 'publisher', '--topic', 'a', '--private-key', '/nonexistent/key.pem', '--alg', 'ES256'], {}, /cannot read \/nonexistent\/key.pem/],
    [['--role', 'publisher', '--topic', 'a', '--key', 'k', '--bogus'], {}, /bogus/],
  ];
  for (const [args, env, message] of cases) {
    const { code, stdout, stderr } = token(args, env);
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    assert.equal(stdout, '', args.join(' '));
    assert.match(stderr, message, args.join(' '));
    assert.match(stderr, /serve-sse token --help/);
  }
});

test('MERCURE_PUBLISHER_JWT_KEY is the key when SERVE_SSE_PUBLISHER_KEY is unset; --help exits 0', async () => {
  const { code, stdout } = token(['--role', 'publisher', '--topic', 'a'], { MERCURE_PUBLISHER_JWT_KEY: PUBLISHER_KEY });
  assert.equal(code, 0);
  await jwtVerify(stdout.trim(), new TextEncoder().encode(PUBLISHER_KEY));
  const help = token(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--role ROLE/);
});
