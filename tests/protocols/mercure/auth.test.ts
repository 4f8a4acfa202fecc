/**
 * Mercure access tokens: where they come from, which keys and algorithms verify them, what the
 * claims of each dialect grant, the cache, and the RFC 6750 answers. Tokens are signed by jose.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPublicKey, createSecretKey, generateKeyPairSync, KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { importPKCS8 } from 'jose';
import { compileSelector } from '../../../src/protocols/mercure/matchers.js';
import {
  authenticate,
  authRefusal,
  createTokenVerifier,
  tokenVerifier,
  draft07Claims,
  draft08Claims,
  extractToken,
  ClaimsError,
  privateAccess,
  INVALID_TOKEN_BODY,
  MAX_AUTHORIZATION_DETAILS,
  MAX_DETAIL_TOPICS,
  MAX_GRANT_SELECTORS,
  MAX_PATTERN_LENGTH,
  MAX_TOKEN_LENGTH,
  TokenCache,
  type AuthLogger,
  type Grant,
  type TokenVerifier,
  type VerifierOptions,
} from '../../../src/protocols/mercure/auth/index.js';
import { accessToken, fetchRequest, HUB, hmacWith, JwksServer, keyPair, nodeRequest, SECRET, secretBytes, sign, unsecured } from './auth-helpers.js';

const DETAIL = 'mercure';
const SNAPSHOT_DETAIL = 'https://mercure.rocks/authorization-detail';

/** Whether the real matchers are in (the placeholder knows exact and `*` only). */
function supports(kind: 'template' | 'urlpattern', source: string): boolean {
  try {
    compileSelector(kind, source, { base: HUB });
    return true;
  } catch {
    return false;
  }
}
const TEMPLATES = supports('template', 'https://example.com/books/{id}') ? false : 'depends on the URI template matcher';
const PATTERNS = supports('urlpattern', 'https://example.com/books/:id') ? false : 'depends on the URL Pattern matcher';

function verifier(options: Partial<VerifierOptions> = {}, role: 'publisher' | 'subscriber' = 'publisher'): Promise<TokenVerifier> {
  return createTokenVerifier(role, { key: SECRET, audience: HUB, ...options });
}

async function grantOf(v: TokenVerifier, token: string): Promise<Grant> {
  const verdict = await v.verify(token, 'header');
  assert.ok(verdict.ok, `refused: ${verdict.ok ? '' : verdict.reason}`);
  return verdict.grant;
}

async function refused(v: TokenVerifier, token: string, reason?: RegExp): Promise<void> {
  const verdict = await v.verify(token, 'header');
  assert.equal(verdict.ok, false, 'the token is accepted');
  if (reason !== undefined && !verdict.ok) assert.match(verdict.reason, reason);
}

const sources = (selectors: readonly { source: string }[]) => selectors.map((selector) => selector.source);

describe('token extraction', () => {
  test('the Bearer header, from a Node request and from a Fetch Request; the scheme in any case', () => {
    assert.deepEqual(extractToken(nodeRequest('/.well-known/mercure', ['Authorization', 'Bearer abc.def.ghi'])), { via: 'header', token: 'abc.def.ghi' });
    assert.deepEqual(extractToken(fetchRequest('/.well-known/mercure', { authorization: 'bearer  abc.def.ghi ' })), { via: 'header', token: 'abc.def.ghi' });
  });

  test('the query parameter: access_token (draft-08) and authorization (draft-07)', () => {
    assert.deepEqual(extractToken(nodeRequest('/.well-known/mercure?topic=a&access_token=t.o.k')), { via: 'query', token: 't.o.k' });
    assert.deepEqual(extractToken(fetchRequest('/.well-known/mercure?authorization=t.o.k&topic=a')), { via: 'query', token: 't.o.k' });
    assert.equal(extractToken(nodeRequest('/.well-known/mercure?topic=a')), undefined);
    assert.equal(extractToken(nodeRequest('/.well-known/mercure?access_token=t.o.k'), { query: false }), undefined, 'query tokens can be turned off');
    assert.deepEqual(extractToken(nodeRequest('/x?access_token=a.b.c'), { search: 'authorization=d.e.f' }), { via: 'query', token: 'd.e.f' }, 'a query string the caller has already');
  });

  test('the three cookie names of the drafts, and a configured name instead of them', () => {
    for (const name of ['mercureAuthorization', '__Secure-mercure_access_token', 'mercureAccessToken']) {
      assert.deepEqual(extractToken(nodeRequest('/', ['Cookie', `theme=dark; ${name}=c.o.k; other=1`])), { via: 'cookie', token: 'c.o.k' }, name);
    }
    const request = nodeRequest('/', ['Cookie', 'hubA=a.a.a; mercureAuthorization=d.d.d']);
    assert.deepEqual(extractToken(request, { cookieNames: ['hubA'] }), { via: 'cookie', token: 'a.a.a' });
    assert.equal(extractToken(nodeRequest('/', ['Cookie', 'mercureAuthorization=d.d.d']), { cookieNames: ['hubA'] }), undefined, 'a configured name replaces the defaults');
  });

  test('cookies: the newest dialect\'s name first, quoted values, cleared cookies, HTTP/2 cookie crumbs, joined Fetch headers', () => {
    assert.equal(extractToken(nodeRequest('/', ['Cookie', 'mercureAuthorization=old.old.old; mercureAccessToken=new.new.new']))?.token, 'new.new.new');
    assert.equal(extractToken(nodeRequest('/', ['Cookie', 'mercureAuthorization="q.q.q"']))?.token, 'q.q.q');
    assert.equal(extractToken(nodeRequest('/', ['Cookie', 'mercureAuthorization=']))?.token, undefined);
    assert.equal(extractToken(nodeRequest('/', ['cookie', 'a=1', 'cookie', 'mercureAuthorization=h.t.2']))?.token, 'h.t.2');
    const joined = new Request(HUB, { headers: [['cookie', 'a=1'], ['cookie', 'mercureAuthorization=f.e.t']] });
    assert.equal(extractToken(joined)?.token, 'f.e.t');
  });

  test('precedence: the header over the query over the cookie', () => {
    const all = nodeRequest('/?access_token=q.q.q', ['Authorization', 'Bearer h.h.h', 'Cookie', 'mercureAuthorization=c.c.c']);
    assert.deepEqual(extractToken(all), { via: 'header', token: 'h.h.h' });
    const noHeader = nodeRequest('/?access_token=q.q.q', ['Cookie', 'mercureAuthorization=c.c.c']);
    assert.deepEqual(extractToken(noHeader), { via: 'query', token: 'q.q.q' });
  });

  test('malformed presentations are problems, and a lower mechanism is not tried instead', () => {
    const cookie = ['Cookie', 'mercureAuthorization=c.c.c'];
    const basic = extractToken(nodeRequest('/', ['Authorization', 'Basic dXNlcjpwYXNz', ...cookie]));
    assert.equal(basic?.via, 'header');
    assert.match(basic?.problem ?? '', /Basic scheme/);
    assert.match(extractToken(nodeRequest('/', ['Authorization', 'Bearer', ...cookie]))?.problem ?? '', /Bearer/);
    assert.match(extractToken(nodeRequest('/', ['Authorization', 'Bearer a b', ...cookie]))?.problem ?? '', /Bearer/);
    assert.match(extractToken(nodeRequest('/?access_token=a.a.a&authorization=b.b.b', cookie))?.problem ?? '', /several/);
    assert.deepEqual(extractToken(nodeRequest('/?access_token=a.a.a&access_token=a.a.a')), { via: 'query', token: 'a.a.a' }, 'the same token twice is harmless');
    assert.match(extractToken(nodeRequest('/?access_token=', cookie))?.problem ?? '', /empty/);
    assert.equal(extractToken(nodeRequest('/', ['Authorization', '', ...cookie]))?.via, 'cookie', 'an empty header is no header');
    assert.match(extractToken(nodeRequest('/', ['Authorization', `Bearer ${'a'.repeat(MAX_TOKEN_LENGTH + 1)}`]))?.problem ?? '', /longer/);
  });

  test('a bad header token wins over a good cookie: 401 invalid_token', async () => {
    const v = await verifier({}, 'subscriber');
    const good = await sign({ mercure: { subscribe: ['*'] } });
    const request = nodeRequest('/', ['Authorization', 'Bearer not.a.token', 'Cookie', `mercureAuthorization=${good}`]);
    const result = await authenticate(request, v, { required: false });
    assert.equal(result.ok, false);
    if (!result.ok) assert.equal(result.answer.status, 401);
    const viaCookie = await authenticate(nodeRequest('/', ['Cookie', `mercureAuthorization=${good}`]), v, { required: true });
    assert.ok(viaCookie.ok && viaCookie.grant?.via === 'cookie');
  });
});

describe('keys and algorithms', () => {
  test('HS256 by default, HS384 and HS512 when configured; a token of another HMAC is refused', async () => {
    const long = 'k'.repeat(64);
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const v = await verifier({ key: long, alg });
      assert.deepEqual(v.algorithms, [alg]);
      await grantOf(v, await sign({}, { alg, key: secretBytes(long) }));
    }
    const v = await verifier();
    assert.deepEqual(v.algorithms, ['HS256']);
    await refused(v, await sign({}, { alg: 'HS512', key: secretBytes() }), /algorithm/);
  });

  test('a wrong secret is refused', async () => {
    await refused(await verifier(), await sign({}, { key: secretBytes('another secret, just as long as the right one') }), /signature/);
  });

  test('alg none is refused, whatever the key; and none cannot be configured', async () => {
    const token = unsecured({ mercure: { publish: ['*'] } });
    await refused(await verifier(), token);
    const rsa = await keyPair('RS256');
    await refused(await verifier({ key: rsa.pem, alg: 'RS256' }), token);
    await assert.rejects(verifier({ alg: 'none' }), (error: Error) => error instanceof TypeError && /publisherAlg.*none/.test(error.message));
  });

  test('RS256, PS256, ES256, ES384 and EdDSA with a PEM public key', async () => {
    for (const [alg, crv] of [['RS256'], ['PS256'], ['ES256'], ['ES384'], ['EdDSA', 'Ed25519']] as const) {
      const pair = await keyPair(alg, crv === undefined ? {} : { crv });
      const v = await verifier({ key: pair.pem, alg });
      const grant = await grantOf(v, await sign({ mercure: { publish: ['a'] } }, { alg, key: pair.privateKey }));
      assert.deepEqual(sources(grant.publish), ['a'], alg);
      const other = await keyPair(alg, crv === undefined ? {} : { crv });
      await refused(v, await sign({}, { alg, key: other.privateKey }), /signature/);
    }
  });

  test('a PEM given with "\\n" for its line breaks (an environment variable), and a PKCS#1 RSA key', async () => {
    const pair = await keyPair('RS256');
    const token = await sign({}, { alg: 'RS256', key: pair.privateKey });
    await grantOf(await verifier({ key: pair.pem.trim().replace(/\n/g, '\\n'), alg: 'RS256' }), token);
    const pkcs1 = createPublicKey(pair.pem).export({ type: 'pkcs1', format: 'pem' }).toString();
    assert.match(pkcs1, /BEGIN RSA PUBLIC KEY/);
    await grantOf(await verifier({ key: pkcs1, alg: 'RS256' }), token);
  });

  test('an X.509 certificate', { skip: spawnSync('openssl', ['version']).status === 0 ? false : 'needs openssl' }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mercure-cert-'));
    try {
      const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=publisher'], { encoding: 'utf8' });
      assert.equal(made.status, 0, made.stderr);
      const privateKey = await importPKCS8(readFileSync(join(dir, 'key.pem'), 'utf8'), 'ES256');
      const v = await verifier({ key: readFileSync(join(dir, 'cert.pem'), 'utf8'), alg: 'ES256' });
      await grantOf(v, await sign({}, { alg: 'ES256', key: privateKey }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('algorithm confusion: an RS256 public key used as an HS256 secret is refused, and cannot be configured as one', async () => {
    const pair = await keyPair('RS256');
    const forged = await hmacWith(pair.pem, 'HS256', { mercure: { publish: ['*'] } });
    await refused(await verifier({ key: pair.pem, alg: 'RS256' }), forged, /algorithm/);
    await assert.rejects(verifier({ key: pair.pem, alg: 'HS256' }), (error: Error) => error instanceof TypeError && /publisherKey is a PEM key/.test(error.message));
    await assert.rejects(verifier({ key: pair.pem }), (error: Error) => error instanceof TypeError && /set publisherAlg/.test(error.message), 'a PEM key without alg is not taken as a secret');
  });

  test('key objects: KeyObject and CryptoKey, public or secret; mismatched ones refused at start-up', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const token = await sign({}, { alg: 'ES256', key: await importPKCS8(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'ES256') });
    await grantOf(await verifier({ key: publicKey, alg: 'ES256' }), token);
    await assert.rejects(verifier({ key: publicKey, alg: 'RS256' }), TypeError);
    await assert.rejects(verifier({ key: publicKey, alg: 'ES384' }), TypeError, 'the curve must fit');
    await assert.rejects(verifier({ key: privateKey, alg: 'ES256' }), /private key/);
    const pair = await keyPair('EdDSA', { crv: 'Ed25519' });
    await grantOf(await verifier({ key: pair.publicKey, alg: 'EdDSA' }), await sign({}, { alg: 'EdDSA', key: pair.privateKey }));
    await assert.rejects(verifier({ key: pair.publicKey, alg: 'ES256' }), TypeError);
    await grantOf(await verifier({ key: createSecretKey(secretBytes()) }), await sign({}));
    await grantOf(await verifier({ key: secretBytes() }), await sign({}));
    await assert.rejects(verifier({ key: secretBytes(), alg: 'RS256' }), TypeError);
  });

  test('bad configuration throws a TypeError naming the option', async () => {
    const pair = await keyPair('RS256');
    const cases: Array<[Partial<VerifierOptions>, RegExp]> = [
      [{ alg: 'HS1024' }, /publisherAlg: "HS1024" is not one of/],
      [{ key: undefined }, /publisherKey \(or publisherJwksUrl\) is required/],
      [{ key: '' }, /publisherKey: the secret is empty/],
      [{ key: 'a secret that is long enough for the hash', alg: 'RS256' }, /publisherKey: RS256 needs a PEM public key/],
      [{ key: SECRET, jwksUrl: 'https://auth.example.com/jwks' }, /exclusive/],
      [{ key: undefined, jwksUrl: 'not a url' }, /publisherJwksUrl: "not a url" is not an absolute URL/],
      [{ key: undefined, jwksUrl: 'ftp://auth.example.com/jwks' }, /publisherJwksUrl: ftp: is not/],
      [{ key: undefined, jwksUrl: 'https://auth.example.com/jwks', alg: 'HS256' }, /publisherAlg: HS256 is an HMAC algorithm/],
      [{ key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----', alg: 'RS256' }, /private key/],
      [{ key: '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----', alg: 'RS256' }, /publisherKey: not a RS256 public key/],
      [{ key: pair.pem, alg: 'ES256' }, /publisherKey: not a ES256 public key/],
      [{ audience: [] }, /audience/],
      [{ clockTolerance: -1 }, /clockTolerance/],
      [{ key: 42 as unknown as string }, /publisherKey must be/],
    ];
    for (const [options, message] of cases) {
      await assert.rejects(verifier(options), (error: Error) => error instanceof TypeError && message.test(error.message), String(message));
    }
    await assert.rejects(
      createTokenVerifier('subscriber', { key: '', names: { key: '--subscriber-key' } }),
      (error: Error) => error instanceof TypeError && error.message.startsWith('--subscriber-key'),
      'the option names are the caller\'s (flags, environment variables)',
    );
  });

  test('tokenVerifier, for handlers built synchronously: the same TypeErrors thrown at once; verifying waits for the import', async () => {
    const pair = await keyPair('ES256');
    assert.throws(() => tokenVerifier('publisher', { key: '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----', alg: 'ES256' }), TypeError);
    assert.throws(() => tokenVerifier('publisher', { key: pair.pem, alg: 'ES384' }), /publisherKey: not a ES384 public key.*prime256v1/);
    assert.throws(() => tokenVerifier('subscriber', { key: pair.pem, alg: 'HS256' }), /subscriberKey is a PEM key/);
    const v = tokenVerifier('publisher', { key: pair.pem, alg: 'ES256' });
    await grantOf(v, await sign({}, { alg: 'ES256', key: pair.privateKey }));
    await v.ready();
  });

  test('a secret shorter than the hash is accepted with a warning', async () => {
    const lines: string[] = [];
    await verifier({ key: 'short', logger: (level, message) => lines.push(`${level} ${message}`) });
    assert.match(lines.join('\n'), /^warn publisherKey is shorter than 32 bytes/);
  });
});

describe('a JWK Set', () => {
  let jwks: JwksServer;
  before(async () => {
    jwks = await JwksServer.start();
  });
  after(() => jwks.close());

  test('keys by kid; a new kid is accepted after a refresh, an unknown kid refused, HMAC never', async () => {
    const a = await keyPair('RS256');
    const b = await keyPair('ES256');
    jwks.keys = [];
    await jwks.add(a, 'a');
    const v = await verifier({ key: undefined, jwksUrl: jwks.url, jwks: { cooldownDuration: 0 } });
    assert.ok(!v.algorithms.some((alg) => alg.startsWith('HS') || alg === 'none'));
    await grantOf(v, await sign({}, { alg: 'RS256', key: a.privateKey, kid: 'a' }));
    const fetched = jwks.requests;
    // Rotation: b appears; the first token under b sends the verifier back to the set.
    await jwks.add(b, 'b');
    await grantOf(v, await sign({}, { alg: 'ES256', key: b.privateKey, kid: 'b' }));
    assert.ok(jwks.requests > fetched, 'the set was fetched again');
    const c = await keyPair('RS256');
    await refused(v, await sign({}, { alg: 'RS256', key: c.privateKey, kid: 'c' }), /no key/);
    await refused(v, await sign({}, { alg: 'RS256', key: c.privateKey, kid: 'a' }), /signature/);
    await refused(v, await sign({}, { alg: 'HS256', key: secretBytes(), kid: 'a' }), /algorithm/);
    // The set declares RS256 for a: a PS256 token under a (same RSA key) finds no key.
    await refused(v, await sign({}, { alg: 'PS256', key: KeyObject.from(a.privateKey) as unknown as CryptoKey, kid: 'a' }), /no key/);
  });

  test('within the cooldown, an unknown kid does not refetch the set', async () => {
    const a = await keyPair('RS256');
    jwks.keys = [];
    await jwks.add(a, 'a');
    const v = await verifier({ key: undefined, jwksUrl: jwks.url });
    await grantOf(v, await sign({}, { alg: 'RS256', key: a.privateKey, kid: 'a' }));
    const fetched = jwks.requests;
    await refused(v, await sign({}, { alg: 'RS256', key: a.privateKey, kid: 'z' }));
    assert.equal(jwks.requests, fetched);
  });

  test('an alg configured with a JWKS is the only one accepted', async () => {
    const a = await keyPair('RS256');
    const e = await keyPair('ES256');
    jwks.keys = [];
    await jwks.add(a, 'a', false);
    await jwks.add(e, 'e');
    const v = await verifier({ key: undefined, jwksUrl: jwks.url, alg: 'RS256' });
    assert.deepEqual(v.algorithms, ['RS256']);
    await grantOf(v, await sign({}, { alg: 'RS256', key: a.privateKey, kid: 'a' }));
    await refused(v, await sign({}, { alg: 'ES256', key: e.privateKey, kid: 'e' }), /algorithm/);
  });

  test('a verdict under a JWKS key is kept no longer than the set: a removed key stops verifying', async () => {
    const a = await keyPair('RS256');
    jwks.keys = [];
    await jwks.add(a, 'a');
    const v = await verifier({ key: undefined, jwksUrl: jwks.url, jwks: { cacheMaxAge: 150, cooldownDuration: 0 } });
    const token = await sign({}, { alg: 'RS256', key: a.privateKey, kid: 'a', expiresIn: 3600 });
    await grantOf(v, token);
    await grantOf(v, token);
    assert.equal(v.stats.checks, 1);
    jwks.keys = [];
    await new Promise((resolve) => setTimeout(resolve, 250));
    await refused(v, token, /no key/);
  });
});

describe('draft-07 claims', () => {
  test('mercure.publish, mercure.subscribe and mercure.payload; exp and sub', async () => {
    const v = await verifier();
    const payload = { user: 'https://example.com/users/1', groups: ['a'] };
    const token = await sign({ sub: 'alice', mercure: { publish: ['https://example.com/a', '*'], subscribe: ['https://example.com/b'], payload } }, { expiresIn: 60 });
    const grant = await grantOf(v, token);
    assert.equal(grant.dialect, 'draft-07');
    assert.deepEqual(sources(grant.publish), ['https://example.com/a', '*']);
    assert.deepEqual(sources(grant.subscribe), ['https://example.com/b']);
    assert.ok(grant.publish[1]!.matches('anything'));
    assert.ok(grant.subscribe[0]!.matches('https://example.com/b') && !grant.subscribe[0]!.matches('https://example.com/c'));
    assert.deepEqual(grant.payloadFor('https://example.com/whatever'), payload);
    assert.equal(grant.sub, 'alice');
    assert.equal(typeof grant.exp, 'number');
    assert.equal(grant.via, 'header');
  });

  test('a token without the mercure claim is valid and grants nothing; exp is optional', async () => {
    const grant = await grantOf(await verifier(), await sign({}));
    assert.deepEqual([grant.publish, grant.subscribe, grant.exp, grant.payloadFor('x')], [[], [], undefined, undefined]);
    assert.equal(privateAccess(grant), undefined);
  });

  test('exp and nbf are honoured when present', async () => {
    const v = await verifier();
    await refused(v, await sign({ mercure: { publish: ['*'] } }, { expiresIn: -10 }), /expired/);
    await refused(v, await sign({ mercure: { publish: ['*'] } }, { notBefore: 60 }), /nbf/);
    await grantOf(await verifier({ clockTolerance: 30 }), await sign({}, { expiresIn: -10 }));
  });

  test('issuer and audience are draft-08 checks: draft-07 tokens go without, but an aud they carry must name the hub', async () => {
    await grantOf(await verifier({ issuer: 'https://example.com' }), await sign({ mercure: {} }));
    const v = await verifier();
    await grantOf(v, await sign({ aud: [HUB, 'https://other.example.com'] }));
    await refused(v, await sign({ aud: 'https://other.example.com' }), /aud/);
    // A hub that does not know its identifier cannot tell.
    await grantOf(await verifier({ audience: undefined }), await sign({ aud: 'https://other.example.com' }));
  });

  test('a malformed mercure claim invalidates the token', async () => {
    const v = await verifier();
    for (const mercure of ['*', ['*'], { publish: '*' }, { subscribe: [1] }, { publish: [''] }, { publish: ['a\u0000b'] }, { publish: ['x'.repeat(MAX_PATTERN_LENGTH + 1)] }]) {
      await refused(v, await sign({ mercure }), /claims/);
    }
  });

  test('caps: at most MAX_GRANT_SELECTORS selectors', async () => {
    const v = await verifier();
    const many = Array.from({ length: MAX_GRANT_SELECTORS / 2 }, (_, i) => `t${i}`);
    await grantOf(v, await sign({ mercure: { publish: many, subscribe: many } }));
    await refused(v, await sign({ mercure: { publish: many, subscribe: [...many, 'one more'] } }), /selectors/);
  });

  test('URI template selectors', { skip: TEMPLATES }, async () => {
    const grant = await grantOf(await verifier(), await sign({ mercure: { subscribe: ['https://example.com/books/{id}'] } }));
    assert.equal(grant.subscribe[0]!.kind, 'template');
    assert.ok(grant.subscribe[0]!.matches('https://example.com/books/1'));
    assert.ok(grant.subscribe[0]!.matches('https://example.com/books/{id}'), 'a template matches itself (draft-07 step 2)');
  });
});

describe('draft-08 claims (at+jwt)', () => {
  test('both detail shapes: type mercure with matchType, the snapshot type with match_type', async () => {
    const v = await verifier();
    const current = await accessToken([
      { type: DETAIL, actions: ['publish'], topics: [{ match: 'https://example.com/a', matchType: 'Exact' }, { match: '*' }] },
      { type: DETAIL, actions: ['subscribe', 'publish'], topics: [{ match: 'https://example.com/b' }] },
    ], { extra: { sub: 'bob' } });
    const grant = await grantOf(v, current);
    assert.equal(grant.dialect, 'draft-08');
    assert.deepEqual(sources(grant.publish), ['https://example.com/a', '*', 'https://example.com/b']);
    assert.deepEqual(sources(grant.subscribe), ['https://example.com/b']);
    assert.equal(grant.subscribe[0]!.kind, 'exact');
    assert.equal(grant.sub, 'bob');
    assert.ok(grant.exp !== undefined && grant.exp > Date.now() / 1000);
    const snapshot = await accessToken([{ type: SNAPSHOT_DETAIL, actions: ['subscribe'], topics: [{ match: 'https://example.com/c', match_type: 'exact' }] }]);
    assert.deepEqual(sources((await grantOf(v, snapshot)).subscribe), ['https://example.com/c']);
  });

  test('typ is a media type: application/at+jwt and AT+JWT are draft-08 too', async () => {
    const v = await verifier();
    for (const typ of ['application/at+jwt', 'AT+JWT']) {
      assert.equal((await grantOf(v, await accessToken([], { typ }))).dialect, 'draft-08');
    }
    assert.equal((await grantOf(v, await sign({}, { typ: 'JWT' }))).dialect, 'draft-07');
  });

  test('details of other types are left alone; no mercure detail grants nothing', async () => {
    const grant = await grantOf(await verifier(), await accessToken([{ type: 'payment', topics: 'whatever', actions: { read: true } }]));
    assert.deepEqual([grant.publish, grant.subscribe], [[], []]);
    assert.deepEqual((await grantOf(await verifier(), await accessToken(undefined))).publish, []);
  });

  test('exp is required and enforced, nbf enforced', async () => {
    const v = await verifier();
    const details = [{ type: DETAIL, actions: ['publish'], topics: [{ match: '*' }] }];
    await refused(v, await sign({ aud: HUB, authorization_details: details }, { typ: 'at+jwt' }), /exp/);
    await refused(v, await accessToken(details, { expiresIn: -5 }), /expired/);
    await refused(v, await accessToken(details, { notBefore: 120 }), /nbf/);
  });

  test('aud must hold the hub\'s identifier, as a string or in an array', async () => {
    const v = await verifier();
    await grantOf(v, await accessToken([], { aud: ['https://other.example.com', HUB] }));
    await refused(v, await accessToken([], { aud: 'https://other.example.com/.well-known/mercure' }), /aud/);
    await refused(v, await sign({}, { typ: 'at+jwt', expiresIn: 60 }), /aud/);
  });

  test('without a configured audience, at+jwt tokens are refused, and the answer says to set --jwt-audience', async () => {
    const lines: string[] = [];
    const logger: AuthLogger = (level, message) => lines.push(`${level} ${message}`);
    const v = await verifier({ audience: undefined, logger }, 'subscriber');
    const verdict = await v.verify(await accessToken([]), 'cookie');
    assert.equal(verdict.ok, false);
    assert.ok(!verdict.ok && /--jwt-audience/.test(verdict.reason));
    assert.equal(v.stats.checks, 0, 'not even a signature check');
    assert.match(lines.join('\n'), /^warn .*--jwt-audience/m);
    const answer = await authenticate(nodeRequest('/', ['Authorization', `Bearer ${await accessToken([])}`]), v, { required: false });
    assert.ok(!answer.ok && answer.answer.status === 401 && /--jwt-audience/.test(answer.answer.body));
    await grantOf(v, await sign({ mercure: { subscribe: ['*'] } }));
  });

  test('iss must be the configured issuer; unchecked when none is configured', async () => {
    const v = await verifier({ issuer: 'https://auth.example.com' });
    await grantOf(v, await accessToken([], { iss: 'https://auth.example.com' }));
    await refused(v, await accessToken([], { iss: 'https://evil.example.com' }), /iss/);
    await refused(v, await accessToken([]), /iss/);
    await grantOf(await verifier(), await accessToken([], { iss: 'https://anyone.example.com' }));
  });

  test('a malformed mercure detail invalidates the whole token, good details and all', async () => {
    const v = await verifier();
    const good = { type: DETAIL, actions: ['publish'], topics: [{ match: '*' }] };
    const bad: unknown[] = [
      { type: DETAIL, actions: [], topics: [{ match: 'a' }] },
      { type: DETAIL, actions: ['read'], topics: [{ match: 'a' }] },
      { type: DETAIL, actions: 'publish', topics: [{ match: 'a' }] },
      { type: DETAIL, topics: [{ match: 'a' }] },
      { type: DETAIL, actions: ['publish'], topics: [] },
      { type: DETAIL, actions: ['publish'], topics: ['a'] },
      { type: DETAIL, actions: ['publish'], topics: [{}] },
      { type: DETAIL, actions: ['publish'], topics: [{ match: null }] },
      { type: DETAIL, actions: ['publish'], topics: [{ match: '' }] },
      { type: DETAIL, actions: ['publish'], topics: [{ match: 'a', matchType: 'exact' }] },
      { type: DETAIL, actions: ['publish'], topics: [{ match: 'a', match_type: 'Exact' }] },
      { type: DETAIL, actions: ['publish'], topics: [{ match: 'a', matchType: 'Exact', match_type: 'exact' }] },
      { type: DETAIL, actions: ['publish'], topics: [{ match: 'a', matchType: 'Regex' }] },
      { type: SNAPSHOT_DETAIL, actions: ['subscribe'], topics: [{ match: 'a' }], payload: ['not', 'an', 'object'] },
      { type: DETAIL, actions: ['publish'], topics: [{ match: 'a\u0085b' }] },
      'mercure',
      { actions: ['publish'], topics: [{ match: '*' }] },
    ];
    for (const entry of bad) {
      await refused(v, await accessToken([good, entry]), /claims/);
      await refused(v, await accessToken([entry, good]), /claims/);
    }
    await refused(v, await accessToken({ type: DETAIL }), /claims/);
  });

  test('caps: details, topics per detail, pattern length, selectors in all', () => {
    const detail = (topics: number) => ({ type: DETAIL, actions: ['subscribe'], topics: Array.from({ length: topics }, (_, i) => ({ match: `t${i}` })) });
    const claims = (details: unknown[]) => () => draft08Claims({ authorization_details: details }, { base: HUB });
    assert.doesNotThrow(claims(Array.from({ length: MAX_AUTHORIZATION_DETAILS }, () => detail(1))));
    assert.throws(claims(Array.from({ length: MAX_AUTHORIZATION_DETAILS + 1 }, () => detail(1))), ClaimsError);
    assert.doesNotThrow(claims([detail(MAX_DETAIL_TOPICS)]));
    assert.throws(claims([detail(MAX_DETAIL_TOPICS + 1)]), ClaimsError);
    assert.doesNotThrow(claims([{ type: DETAIL, actions: ['publish'], topics: [{ match: 'x'.repeat(MAX_PATTERN_LENGTH) }] }]));
    assert.throws(claims([{ type: DETAIL, actions: ['publish'], topics: [{ match: 'x'.repeat(MAX_PATTERN_LENGTH + 1) }] }]), ClaimsError);
    const full = Array.from({ length: MAX_GRANT_SELECTORS / MAX_DETAIL_TOPICS }, () => detail(MAX_DETAIL_TOPICS));
    assert.doesNotThrow(claims(full));
    assert.throws(claims([...full, detail(1)]), /more than 1000/);
    // A detail with both actions counts its topics once per action against the cap.
    assert.throws(() => draft07Claims({ mercure: { publish: Array.from({ length: MAX_GRANT_SELECTORS + 1 }, () => 'same') } }, { base: HUB }), ClaimsError);
  });

  test('payloadFor: the first subscribe detail whose topics match the subscription\'s selector; * as a default', async () => {
    const grant = await grantOf(await verifier(), await accessToken([
      { type: DETAIL, actions: ['publish'], topics: [{ match: '*' }], payload: { ignored: 'publish details carry no subscription payload' } },
      { type: DETAIL, actions: ['subscribe'], topics: [{ match: 'https://example.com/foo' }], payload: { custom1: 1 } },
      { type: DETAIL, actions: ['subscribe'], topics: [{ match: 'https://example.com/bare' }] },
      { type: SNAPSHOT_DETAIL, actions: ['subscribe'], topics: [{ match: '*' }], payload: { custom3: 3 } },
    ]));
    assert.deepEqual(grant.payloadFor('https://example.com/foo'), { custom1: 1 });
    assert.deepEqual(grant.payloadFor('https://example.com/other'), { custom3: 3 });
    assert.equal(grant.payloadFor('https://example.com/bare'), undefined, 'the first matching detail decides, payload or not');
  });

  test('URL Pattern topics, and payloads chosen by a pattern matching the subscription\'s pattern as a topic', { skip: PATTERNS }, async () => {
    const grant = await grantOf(await verifier(), await accessToken([
      { type: DETAIL, actions: ['subscribe'], topics: [{ match: 'https://example.com/books/:id', matchType: 'URLPattern' }], payload: { books: true } },
      { type: SNAPSHOT_DETAIL, actions: ['subscribe'], topics: [{ match: '/.well-known/mercure/subscriptions/:rest*', match_type: 'urlpattern' }] },
    ]));
    assert.equal(grant.subscribe[0]!.kind, 'urlpattern');
    assert.ok(grant.subscribe[0]!.matches('https://example.com/books/1'));
    assert.ok(!grant.subscribe[0]!.matches('https://example.com/authors/1'));
    assert.ok(grant.subscribe[1]!.matches(`${new URL(HUB).origin}/.well-known/mercure/subscriptions/a`), 'relative patterns resolve against the hub');
    assert.deepEqual(grant.payloadFor('https://example.com/books/:id'), { books: true });
  });

  test('a pattern the matcher refuses invalidates the token', { skip: PATTERNS }, async () => {
    await refused(await verifier(), await accessToken([{ type: DETAIL, actions: ['subscribe'], topics: [{ match: 'https://example.com/(', matchType: 'URLPattern' }] }]), /claims/);
  });
});

describe('private access', () => {
  test('equal subscribe selectors, equal keys; the access allows what the selectors match', async () => {
    const v = await verifier();
    const one = await grantOf(v, await sign({ mercure: { subscribe: ['b', 'a'] } }));
    const two = await grantOf(v, await sign({ sub: 'another token', mercure: { subscribe: ['a', 'b', 'a'] } }));
    const exact = await grantOf(v, await accessToken([{ type: DETAIL, actions: ['subscribe'], topics: [{ match: 'a' }, { match: 'b' }] }]));
    const exactToo = await grantOf(v, await accessToken([{ type: SNAPSHOT_DETAIL, actions: ['subscribe'], topics: [{ match: 'b' }, { match: 'a', match_type: 'exact' }] }]));
    assert.equal(privateAccess(exact)!.key, privateAccess(exactToo)!.key);
    const three = await grantOf(v, await sign({ mercure: { subscribe: ['a'] } }));
    assert.equal(privateAccess(one)!.key, privateAccess(two)!.key);
    assert.notEqual(privateAccess(one)!.key, privateAccess(three)!.key);
    assert.ok(privateAccess(one)!.allows('a') && !privateAccess(three)!.allows('b'));
    assert.equal(privateAccess(undefined), undefined);
  });
});

describe('the cache', () => {
  test('a second verify of the same token makes no signature check; how it came is per request', async () => {
    const v = await verifier();
    const token = await accessToken([{ type: DETAIL, actions: ['publish'], topics: [{ match: '*' }] }]);
    const first = await v.verify(token, 'header');
    const second = await v.verify(token, 'cookie');
    assert.ok(first.ok && second.ok);
    assert.deepEqual(v.stats, { checks: 1, cacheHits: 1 });
    assert.equal(first.grant.via, 'header');
    assert.equal(second.grant.via, 'cookie');
    assert.equal(second.grant.publish, first.grant.publish, 'the same compiled selectors');
  });

  test('concurrent verifies of one token share one check; refused tokens are not cached', async () => {
    const v = await verifier();
    const token = await sign({ mercure: { publish: ['*'] } });
    const verdicts = await Promise.all(Array.from({ length: 20 }, () => v.verify(token, 'header')));
    assert.ok(verdicts.every((verdict) => verdict.ok));
    assert.equal(v.stats.checks, 1);
    const bad = await sign({}, { key: secretBytes('the wrong secret, the wrong secret, the wrong secret') });
    await refused(v, bad);
    await refused(v, bad);
    assert.equal(v.stats.checks, 3);
  });

  test('a cached token is refused once it expires', async () => {
    const v = await verifier();
    const exp = Math.floor(Date.now() / 1000) + 1;
    const token = await sign({ exp, mercure: { publish: ['*'] } });
    await grantOf(v, token);
    await grantOf(v, token);
    assert.equal(v.stats.cacheHits, 1);
    await new Promise((resolve) => setTimeout(resolve, exp * 1000 - Date.now() + 20));
    await refused(v, token, /expired/);
  });

  test('TokenCache is bounded in entries and in characters, oldest forgotten first', () => {
    const cache = new TokenCache<number>(3, 10);
    cache.set('aaaa', 1, Infinity);
    cache.set('bbbb', 2, Infinity);
    cache.set('cccc', 3, Infinity);
    assert.deepEqual([cache.get('aaaa'), cache.get('bbbb'), cache.get('cccc')], [undefined, 2, 3]);
    cache.set('d', 4, Infinity);
    cache.set('e', 5, Infinity);
    assert.equal(cache.size, 3);
    assert.equal(cache.get('bbbb'), undefined);
    cache.set('stale', 6, Date.now() - 1);
    assert.equal(cache.get('stale'), undefined);
    cache.set('x'.repeat(11), 7, Infinity);
    assert.equal(cache.get('x'.repeat(11)), undefined, 'a token longer than the whole budget is not kept');
  });
});

describe('refusals (RFC 6750)', () => {
  test('the four answers', () => {
    const missing = authRefusal('missing');
    assert.deepEqual([missing.status, missing.headers['www-authenticate']], [401, 'Bearer']);
    const invalid = authRefusal('invalid_token', { message: 'the token has expired' });
    assert.deepEqual([invalid.status, invalid.headers['www-authenticate'], invalid.body], [401, 'Bearer error="invalid_token"', INVALID_TOKEN_BODY]);
    const scope = authRefusal('insufficient_scope', { message: 'the token does not allow publishing to "a"' });
    assert.deepEqual([scope.status, scope.headers['www-authenticate'], scope.body], [403, 'Bearer error="insufficient_scope"', 'the token does not allow publishing to "a"\n']);
    const malformed = authRefusal('invalid_request', { message: 'two\nlines' });
    assert.deepEqual([malformed.status, malformed.headers['www-authenticate'], malformed.body], [400, 'Bearer error="invalid_request"', 'two lines\n']);
    for (const answer of [missing, invalid, scope, malformed]) assert.equal(answer.headers['content-type'], 'text/plain; charset=utf-8');
  });

  test('realm and resource_metadata in the challenge, quoted', () => {
    const answer = authRefusal('missing', { realm: 'hub "one"', resourceMetadata: 'https://hub.example.com/.well-known/oauth-protected-resource/.well-known/mercure' });
    assert.equal(answer.headers['www-authenticate'], 'Bearer realm="hub \\"one\\"", resource_metadata="https://hub.example.com/.well-known/oauth-protected-resource/.well-known/mercure"');
  });

  test('authenticate: no token, a malformed one, failing ones (one answer for all, the reason in the debug log)', async () => {
    const lines: string[] = [];
    const v = await verifier({ logger: (level, message) => lines.push(`${level} ${message}`) });
    const missing = await authenticate(nodeRequest('/'), v, { required: true });
    assert.ok(!missing.ok && missing.answer.status === 401 && missing.answer.headers['www-authenticate'] === 'Bearer');
    assert.deepEqual(await authenticate(nodeRequest('/'), v, { required: false }), { ok: true, grant: undefined });
    const malformed = await authenticate(nodeRequest('/', ['Authorization', 'Basic eDp5']), v, { required: false });
    assert.ok(!malformed.ok && malformed.answer.status === 400 && /invalid_request/.test(malformed.answer.headers['www-authenticate']));
    const expired = await sign({}, { expiresIn: -60 });
    const forged = await sign({}, { key: secretBytes('not the key, not the key, not the key, not the key') });
    const answers = [];
    for (const token of [expired, forged, 'garbage', unsecured({})]) {
      const result = await authenticate(nodeRequest(`/?access_token=${token}`), v, { required: false });
      assert.ok(!result.ok);
      answers.push(result.answer);
    }
    assert.ok(answers.every((answer) => JSON.stringify(answer) === JSON.stringify(authRefusal('invalid_token'))), 'never says why');
    const log = lines.join('\n');
    assert.match(log, /debug publisher token refused: it has expired/);
    assert.match(log, /debug publisher token refused: its signature does not match/);
    assert.ok(!log.includes(expired), 'the log never holds the token');
    const ok = await authenticate(fetchRequest('/', { authorization: `Bearer ${await sign({ mercure: { publish: ['*'] } })}` }), v, { required: true });
    assert.ok(ok.ok && ok.grant?.via === 'header' && ok.grant.publish.length === 1);
  });
});
