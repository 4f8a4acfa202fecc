/** `serve-sse hub` settings: flags, their environment twins, defaults, errors and the help text. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, hubUsage, parseHubArgs } from '../../src/cli/hub-flags.js';
import { DEFAULTS } from '../../src/server/config.js';

/** Every setting: flag, environment twin, a valid value as given, and what it parses to. */
const SETTINGS: Array<[flag: string, env: string, given: string, parsed: unknown, key: string]> = [
  ['--port', 'PORT', '9090', 9090, 'port'],
  ['--host', 'HOST', '127.0.0.1', '127.0.0.1', 'host'],
  ['--redis', 'REDIS_URL', 'redis://cache:6379/0', 'redis://cache:6379/0', 'redis'],
  ['--publisher-key', 'SERVE_SSE_PUBLISHER_KEY', 'pub-secret', 'pub-secret', 'publisherKey'],
  ['--subscriber-key', 'SERVE_SSE_SUBSCRIBER_KEY', 'sub-secret', 'sub-secret', 'subscriberKey'],
  ['--cors', 'SERVE_SSE_CORS', 'https://a.example, https://b.example:8443', ['https://a.example', 'https://b.example:8443'], 'cors'],
  ['--max-body', 'SERVE_SSE_MAX_BODY', '4096', 4096, 'maxBody'],
  ['--max-connections-per-ip', 'SERVE_SSE_MAX_CONNECTIONS_PER_IP', '7', 7, 'maxConnectionsPerIp'],
  ['--history', 'SERVE_SSE_HISTORY', '50', 50, 'history'],
  ['--presence-heartbeat', 'SERVE_SSE_PRESENCE_HEARTBEAT', '1000', 1000, 'presenceHeartbeat'],
  ['--keep-alive', 'SERVE_SSE_KEEP_ALIVE', '5000', 5000, 'keepAlive'],
  ['--slow-client-timeout', 'SERVE_SSE_SLOW_CLIENT_TIMEOUT', '4000', 4000, 'slowClientTimeout'],
  ['--max-buffered', 'SERVE_SSE_MAX_BUFFERED', '1048576', 1048576, 'maxBuffered'],
  ['--shutdown-retry', 'SERVE_SSE_SHUTDOWN_RETRY', '3000', 3000, 'shutdownRetry'],
  ['--shutdown-timeout', 'SERVE_SSE_SHUTDOWN_TIMEOUT', '1000', 1000, 'shutdownTimeout'],
  ['--body-timeout', 'SERVE_SSE_BODY_TIMEOUT', '2500', 2500, 'bodyTimeout'],
  ['--log-level', 'LOG_LEVEL', 'debug', 'debug', 'logLevel'],
  ['--publisher-alg', 'SERVE_SSE_PUBLISHER_ALG', 'rs256', 'RS256', 'publisherAlg'],
  ['--subscriber-alg', 'SERVE_SSE_SUBSCRIBER_ALG', 'EdDSA', 'EdDSA', 'subscriberAlg'],
  ['--publisher-jwks-url', 'SERVE_SSE_PUBLISHER_JWKS_URL', 'https://auth.example/jwks.json', 'https://auth.example/jwks.json', 'publisherJwksUrl'],
  ['--subscriber-jwks-url', 'SERVE_SSE_SUBSCRIBER_JWKS_URL', 'https://auth.example/jwks.json', 'https://auth.example/jwks.json', 'subscriberJwksUrl'],
  ['--jwt-issuer', 'SERVE_SSE_JWT_ISSUER', 'https://auth.example', 'https://auth.example', 'jwtIssuer'],
  ['--jwt-audience', 'SERVE_SSE_JWT_AUDIENCE', 'https://hub.example/.well-known/mercure', 'https://hub.example/.well-known/mercure', 'jwtAudience'],
  ['--publish-origins', 'SERVE_SSE_PUBLISH_ORIGINS', 'https://a.example,https://b.example', ['https://a.example', 'https://b.example'], 'publishOrigins'],
  ['--public-url', 'SERVE_SSE_PUBLIC_URL', 'https://hub.example', 'https://hub.example', 'publicUrl'],
  ['--max-lifetime', 'SERVE_SSE_MAX_LIFETIME', '3600000', 3600000, 'maxLifetime'],
  ['--workers', 'SERVE_SSE_WORKERS', '4', 4, 'workers'],
];

const parse = (args: string[], env: Record<string, string> = {}) => parseHubArgs(args, env).config as unknown as Record<string, unknown>;

function throwsConfig(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => error instanceof ConfigError && message.test(error.message));
}

describe('hub settings', () => {
  test('defaults: port 8080, in memory, no keys, no CORS, 1 MiB bodies, 100 streams per address', () => {
    assert.deepEqual(parseHubArgs([], {}).config, DEFAULTS);
    assert.equal(DEFAULTS.port, 8080);
    assert.equal(DEFAULTS.redis, undefined);
    assert.equal(DEFAULTS.publisherKey, undefined);
    assert.equal(DEFAULTS.subscriberKey, undefined);
    assert.equal(DEFAULTS.maxBody, 1024 * 1024);
    assert.equal(DEFAULTS.maxConnectionsPerIp, 100);
    assert.equal(DEFAULTS.bodyTimeout, 10_000);
  });

  for (const [flag, env, given, parsed, key] of SETTINGS) {
    test(`${flag} and its twin ${env}; the flag wins`, () => {
      assert.deepEqual(parse([flag, given])[key], parsed, 'from the flag');
      assert.deepEqual(parse([], { [env]: given })[key], parsed, 'from the environment');
      assert.deepEqual(parse([`${flag}=${given}`], { [env]: 'ignored, and not even checked' })[key], parsed, 'the flag wins');
    });
  }

  test('--trust-proxy is a boolean flag; SERVE_SSE_TRUST_PROXY takes 1/true/yes or 0/false/no', () => {
    assert.equal(parse(['--trust-proxy']).trustProxy, true);
    assert.equal(parse([], { SERVE_SSE_TRUST_PROXY: 'true' }).trustProxy, true);
    assert.equal(parse([], { SERVE_SSE_TRUST_PROXY: '0' }).trustProxy, false);
    throwsConfig(() => parse([], { SERVE_SSE_TRUST_PROXY: 'maybe' }), /SERVE_SSE_TRUST_PROXY/);
  });

  test('--ui is a boolean flag, off by default; SERVE_SSE_UI takes 1/true/yes or 0/false/no', () => {
    assert.equal(parse([]).ui, false);
    assert.equal(parse(['--ui']).ui, true);
    assert.equal(parse([], { SERVE_SSE_UI: '1' }).ui, true);
    assert.equal(parse([], { SERVE_SSE_UI: 'no' }).ui, false);
    throwsConfig(() => parse([], { SERVE_SSE_UI: 'on' }), /SERVE_SSE_UI/);
  });

  test("Mercure's environment: the key and algorithm twins, and the directives of MERCURE_EXTRA_DIRECTIVES", () => {
    const env = {
      MERCURE_PUBLISHER_JWT_KEY: 'pub',
      MERCURE_PUBLISHER_JWT_ALG: 'HS512',
      MERCURE_SUBSCRIBER_JWT_KEY: 'sub',
      MERCURE_EXTRA_DIRECTIVES: 'anonymous\ncors_origins https://a.example https://b.example\npublish_origins https://a.example\nsubscriptions\ndemo\n',
    };
    const config = parse([], env);
    assert.equal(config.publisherKey, 'pub');
    assert.equal(config.publisherAlg, 'HS512');
    assert.equal(config.subscriberKey, 'sub');
    assert.equal(config.anonymous, true);
    assert.deepEqual(config.cors, ['https://a.example', 'https://b.example']);
    assert.deepEqual(config.publishOrigins, ['https://a.example']);
    assert.equal(config.subscriptions, true);
    // Ours win over Mercure's, and a flag over both.
    assert.equal(parse([], { ...env, SERVE_SSE_PUBLISHER_KEY: 'ours' }).publisherKey, 'ours');
    assert.equal(parse(['--cors', 'https://c.example'], env).cors?.toString(), 'https://c.example');
    throwsConfig(() => parse([], { MERCURE_EXTRA_DIRECTIVES: 'cors_origins https://a.example/path' }), /MERCURE_EXTRA_DIRECTIVES \(cors_origins\)/);
  });

  test('--anonymous is a boolean; --no-subscriptions turns active subscriptions off, as SERVE_SSE_SUBSCRIPTIONS=0 does', () => {
    assert.equal(parse(['--anonymous']).anonymous, true);
    assert.equal(parse([]).subscriptions, true);
    assert.equal(parse(['--no-subscriptions']).subscriptions, false);
    assert.equal(parse([], { SERVE_SSE_SUBSCRIPTIONS: '0' }).subscriptions, false);
    throwsConfig(() => parse(['--publisher-alg', 'none']), /--publisher-alg must be one of/);
    throwsConfig(() => parse(['--publisher-jwks-url', 'ftp://x']), /--publisher-jwks-url must be an http/);
  });

  test('an empty environment variable counts as unset', () => {
    assert.equal(parse([], { PORT: '', SERVE_SSE_PUBLISHER_KEY: '' }).port, 8080);
    assert.equal(parse([], { SERVE_SSE_PUBLISHER_KEY: '' }).publisherKey, undefined);
  });

  test('--cors "*" allows any origin, alone', () => {
    assert.equal(parse(['--cors', '*']).cors, '*');
    throwsConfig(() => parse(['--cors', '*,https://a.example']), /cannot be mixed/);
  });

  test('bad values name the flag or variable and the value', () => {
    throwsConfig(() => parse(['--port', 'abc']), /--port .*"abc"/);
    throwsConfig(() => parse(['--port', '70000']), /--port/);
    throwsConfig(() => parse([], { PORT: '-1' }), /^PORT must be/);
    throwsConfig(() => parse(['--redis', 'http://cache']), /--redis must be a redis:\/\//);
    throwsConfig(() => parse([], { REDIS_URL: 'nonsense' }), /REDIS_URL/);
    throwsConfig(() => parse(['--cors', 'https://a.example/']), /--cors/);
    throwsConfig(() => parse(['--cors', ',']), /at least one origin/);
    throwsConfig(() => parse(['--max-body', '0']), /--max-body/);
    throwsConfig(() => parse(['--presence-heartbeat', '50']), /--presence-heartbeat must be an integer from 100/);
    throwsConfig(() => parse(['--body-timeout', '0']), /--body-timeout must be an integer from 1/);
    throwsConfig(() => parse(['--log-level', 'loud']), /--log-level must be one of/);
    throwsConfig(() => parse(['--publisher-key', '  ']), /must not be empty/);
    throwsConfig(() => parse(['--nope']), /--nope/);
    throwsConfig(() => parse(['--port']), /--port/);
    throwsConfig(() => parse(['stray']), /stray/);
  });

  test('--help stops parsing and documents every flag with its environment twin', () => {
    assert.equal(parseHubArgs(['--help', '--port', 'abc'], {}).help, true);
    assert.equal(parseHubArgs(['-h'], {}).help, true);
    const usage = hubUsage();
    for (const [flag, env] of [...SETTINGS.map(([flag, env]) => [flag, env] as const), ['--trust-proxy', 'SERVE_SSE_TRUST_PROXY'] as const, ['--ui', 'SERVE_SSE_UI'] as const]) {
      // Where its own entry starts (other entries' help may mention it).
      const at = usage.indexOf(`\n  ${flag} `) === -1 ? usage.indexOf(`\n  ${flag}`) : usage.indexOf(`\n  ${flag} `);
      assert.ok(at !== -1, `${flag} is documented`);
      // Its twin is named right under it.
      const next = usage.indexOf('\n  --', at + 1);
      assert.match(usage.slice(at, next === -1 ? undefined : next), new RegExp(`env ${env}\\b`), `${flag} names ${env}`);
    }
    for (const endpoint of ['GET  /events', 'POST /publish', 'GET  /healthz', 'GET  /readyz', 'GET  /metrics', 'GET  /.well-known/mercure', 'POST /.well-known/mercure', 'GET  /ui']) {
      assert.ok(usage.includes(endpoint), endpoint);
    }
    assert.match(usage, /env SERVE_SSE_PUBLISHER_KEY, MERCURE_PUBLISHER_JWT_KEY/);
  });
});
