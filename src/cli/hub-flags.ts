/**
 * The `serve-sse hub` flags: every flag, its environment twin, its default, and the help text,
 * in one table, so that the parser and `--help` cannot drift apart.
 */
import { parseArgs } from 'node:util';
import { resolveCors } from '../cors.js';
import { ALGORITHMS } from '../protocols/jwt/algorithms.js';
import { DEFAULTS, LOG_LEVELS, type HubServerConfig, type LogLevel } from '../server/config.js';

/** A setting the user got wrong: the bin prints it with a pointer to `--help` and exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Key = keyof HubServerConfig;

interface Setting {
  key: Key;
  flag: string;
  env: string;
  /** Other variables that set it, after `env`: the names Mercure's container image reads. */
  twins: readonly string[];
  /** A boolean flag that turns the setting off (`--no-subscriptions`). */
  negates: boolean;
  /** How the value is shown in the help; undefined for a boolean flag. */
  arg: string | undefined;
  help: string;
  /** `where` names the flag or variable the value came from, for error messages. */
  parse(value: string, where: string): HubServerConfig[Key];
}

const MAX_INT = Number.MAX_SAFE_INTEGER;

const SETTINGS: readonly Setting[] = [
  setting('port', 'PORT', 'N', (value, where) => integer(value, where, 0, 65535), 'Port to listen on (0 picks a free one). Default 8080.'),
  setting('host', 'HOST', 'HOST', nonEmpty, 'Address to listen on. Default: every interface.'),
  setting('redis', 'REDIS_URL', 'URL', redisUrl,
    'Share publications and history with other instances through Redis (redis:// or rediss://). Default: in memory, one instance.'),
  setting('redis-key', 'SERVE_SSE_REDIS_KEY', 'KEY', nonEmpty,
    'The Redis stream shared by the instances of one hub; separate hubs on one Redis need separate keys. Default serve-sse.'),
  setting('presence-heartbeat', 'SERVE_SSE_PRESENCE_HEARTBEAT', 'MS', (value, where) => integer(value, where, 100, MAX_INT),
    "With --redis: milliseconds between an instance's presence heartbeats; one that stops leaves the other instances' Mercure subscription lists within 3 of them. Default 5000."),
  setting('publisher-key', 'SERVE_SSE_PUBLISHER_KEY', 'KEY', nonEmpty,
    "Key of publishers' JWTs: a secret (HS256 by default), or a PEM public key or certificate (then --publisher-alg is required). Without it, publishing is refused.", { twins: ['MERCURE_PUBLISHER_JWT_KEY'] }),
  setting('publisher-alg', 'SERVE_SSE_PUBLISHER_ALG', 'ALG', algorithm, "Algorithm of publishers' JWTs: the only one accepted. Default HS256 for a secret; required for a PEM key.", { twins: ['MERCURE_PUBLISHER_JWT_ALG'] }),
  setting('publisher-jwks-url', 'SERVE_SSE_PUBLISHER_JWKS_URL', 'URL', httpUrl, "A JWK Set URL for publishers' keys, instead of --publisher-key."),
  setting('subscriber-key', 'SERVE_SSE_SUBSCRIBER_KEY', 'KEY', nonEmpty,
    "Key of subscribers' JWTs (as --publisher-key). Without it, anyone may subscribe (to public updates, on Mercure).", { twins: ['MERCURE_SUBSCRIBER_JWT_KEY'] }),
  setting('subscriber-alg', 'SERVE_SSE_SUBSCRIBER_ALG', 'ALG', algorithm, "Algorithm of subscribers' JWTs (as --publisher-alg).", { twins: ['MERCURE_SUBSCRIBER_JWT_ALG'] }),
  setting('subscriber-jwks-url', 'SERVE_SSE_SUBSCRIBER_JWKS_URL', 'URL', httpUrl, "A JWK Set URL for subscribers' keys, instead of --subscriber-key."),
  setting('anonymous', 'SERVE_SSE_ANONYMOUS', undefined, boolean,
    'Mercure: with a subscriber key, still let subscribers without a token in, for public updates only. In the environment: 1/true or 0/false.'),
  setting('jwt-issuer', 'SERVE_SSE_JWT_ISSUER', 'ISS', nonEmpty, 'Mercure draft-08 (at+jwt) tokens must have been issued by this iss.'),
  setting('jwt-audience', 'SERVE_SSE_JWT_AUDIENCE', 'AUD', nonEmpty,
    "Mercure draft-08 (at+jwt) tokens must name this audience in aud (the hub's resource identifier). Default: the Mercure URL under --public-url; with neither, they are refused."),
  setting('publish-origins', 'SERVE_SSE_PUBLISH_ORIGINS', 'ORIGINS', originList,
    "Mercure: comma-separated origins allowed to publish with a cookie (against cross-site request forgery). Default: the hub's own."),
  setting('no-subscriptions', 'SERVE_SSE_SUBSCRIPTIONS', undefined, boolean,
    "Mercure: turn off active subscriptions (subscription events and /.well-known/mercure/subscriptions). On by default; in the environment 0 turns them off.",
    { key: 'subscriptions', negates: true }),
  setting('max-lifetime', 'SERVE_SSE_MAX_LIFETIME', 'MS', (value, where) => integer(value, where, 1000, MAX_INT),
    "Mercure: a subscriber's stream ends after this many milliseconds whatever its token says, so that it comes back and is authorised again. Default: at the token's exp only."),
  setting('public-url', 'SERVE_SSE_PUBLIC_URL', 'URL', httpUrl,
    "The hub's public URL (https://hub.example.com): relative Mercure topics and URL patterns resolve against it."),
  setting('cors', 'SERVE_SSE_CORS', 'ORIGINS', corsOrigins,
    'Comma-separated origins allowed cross-origin (https://app.example,...), with cookies; "*" for any origin, without cookies. Default: same origin only.'),
  setting('max-body', 'SERVE_SSE_MAX_BODY', 'BYTES', (value, where) => integer(value, where, 1, MAX_INT),
    'Largest POST /publish body; larger ones get 413. Default 1048576 (1 MiB).'),
  setting('max-connections-per-ip', 'SERVE_SSE_MAX_CONNECTIONS_PER_IP', 'N', (value, where) => integer(value, where, 0, MAX_INT),
    'Open GET /events requests per client address; more get 429. 0: no cap. Default 100.'),
  setting('trust-proxy', 'SERVE_SSE_TRUST_PROXY', undefined, boolean,
    'Take the client address from the last X-Forwarded-For entry (behind one reverse proxy). In the environment: 1/true or 0/false.'),
  setting('history', 'SERVE_SSE_HISTORY', 'N', (value, where) => integer(value, where, 0, MAX_INT), 'Events kept for replay after a reconnection (0: none). Default 1000.'),
  setting('keep-alive', 'SERVE_SSE_KEEP_ALIVE', 'MS', (value, where) => integer(value, where, 1, MAX_INT), 'Milliseconds between keep-alive comments on idle streams. Default 15000.'),
  setting('slow-client-timeout', 'SERVE_SSE_SLOW_CLIENT_TIMEOUT', 'MS', (value, where) => integer(value, where, 1, MAX_INT),
    'A subscriber that keeps more than 64 KiB unread for this long is disconnected (it resumes from its last id). Default 10000.'),
  setting('max-buffered', 'SERVE_SSE_MAX_BUFFERED', 'BYTES', (value, where) => integer(value, where, 65536, MAX_INT),
    'A subscriber with this much unread is disconnected at once: the most one can hold. Default 2097152 (2 MiB).'),
  setting('shutdown-retry', 'SERVE_SSE_SHUTDOWN_RETRY', 'MS', (value, where) => integer(value, where, 0, MAX_INT),
    'Reconnection delay sent to every client on SIGTERM/SIGINT, spread up to twice that so they do not all return at once. Default 2000.'),
  setting('shutdown-timeout', 'SERVE_SSE_SHUTDOWN_TIMEOUT', 'MS', (value, where) => integer(value, where, 0, MAX_INT),
    'Longest a shutdown waits for clients to go before cutting them. Default 10000.'),
  setting('body-timeout', 'SERVE_SSE_BODY_TIMEOUT', 'MS', (value, where) => integer(value, where, 1, MAX_INT),
    'Longest a client may take to send a request head, and a POST /publish its whole body after the head; slower ones get 408 and the connection is closed. Default 10000.'),
  setting('ui', 'SERVE_SSE_UI', undefined, boolean,
    'Serve a dashboard at GET /ui: live figures, and a console to subscribe and publish (native and Mercure). Keep it off the public route; with a subscriber key, its figures need a subscriber token for every topic. In the environment: 1/true or 0/false.'),
  setting('workers', 'SERVE_SSE_WORKERS', 'N', (value, where) => integer(value, where, 1, 1024),
    'Worker processes that share the port and one log (node:cluster; the primary spreads the connections): with --redis, Redis is the log; without, the primary holds it. A worker that dies is restarted. Default 1: one process, no primary.'),
  setting('log-level', 'LOG_LEVEL', 'LEVEL', logLevel, `One of ${LOG_LEVELS.join(', ')}. Default info.`),
];

/** A setting whose config key is its flag in camel case (`--max-body`: `maxBody`), unless told. */
function setting(
  flag: string,
  env: string,
  arg: string | undefined,
  parse: Setting['parse'],
  help: string,
  { twins = [], key, negates = false }: { twins?: string[]; key?: Key; negates?: boolean } = {},
): Setting {
  const configKey = key ?? (flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase()) as Key);
  if (!(configKey in DEFAULTS)) throw new Error(`serve-sse: no hub setting ${configKey}`);
  return { key: configKey, flag, env, twins, negates, arg, parse, help };
}

/**
 * The settings from the command line, else the environment, else the defaults.
 * @returns `help: true` when `--help` was asked for (nothing else is checked then).
 * @throws ConfigError naming the flag or variable that is wrong.
 */
export function parseHubArgs(args: readonly string[], env: NodeJS.ProcessEnv): { help: boolean; config: HubServerConfig } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const setting of SETTINGS) options[setting.flag] = { type: setting.arg === undefined ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  if (values.help === true) return { help: true, config: { ...DEFAULTS } };

  const config: Record<string, unknown> = { ...DEFAULTS };
  const directives = mercureDirectives(env.MERCURE_EXTRA_DIRECTIVES);
  for (const setting of SETTINGS) {
    const fromFlag = values[setting.flag];
    // An empty variable counts as unset: container platforms often define every variable.
    const envName = [setting.env, ...setting.twins].find((name) => env[name] !== undefined && env[name] !== '');
    if (fromFlag !== undefined) {
      config[setting.key] = typeof fromFlag === 'boolean' ? fromFlag !== setting.negates : setting.parse(fromFlag, `--${setting.flag}`);
    } else if (envName !== undefined) {
      // A variable names the setting, not the flag: SERVE_SSE_SUBSCRIPTIONS=0 turns them off.
      config[setting.key] = setting.parse(env[envName]!, envName);
    } else if (directives.has(setting.key)) {
      config[setting.key] = directives.get(setting.key);
    }
  }
  return { help: false, config: config as unknown as HubServerConfig };
}

/**
 * The Caddyfile directives of Mercure's container image (`MERCURE_EXTRA_DIRECTIVES`) that have a
 * meaning here: `anonymous`, `cors_origins`, `publish_origins`, `subscriptions`. A compose file
 * switches images without changing its environment; other directives are ignored (Caddy's own).
 */
function mercureDirectives(text: string | undefined): Map<Key, unknown> {
  const found = new Map<Key, unknown>();
  for (const line of (text ?? '').split(/\r?\n/)) {
    const [name, ...words] = line.trim().split(/\s+/);
    const where = `MERCURE_EXTRA_DIRECTIVES (${name})`;
    if (name === 'anonymous') found.set('anonymous', true);
    else if (name === 'subscriptions') found.set('subscriptions', true);
    else if (name === 'cors_origins' && words.length > 0) found.set('cors', corsOrigins(words.join(','), where));
    else if (name === 'publish_origins' && words.length > 0) found.set('publishOrigins', originList(words.join(','), where));
  }
  return found;
}

/** The `serve-sse hub --help` text. */
export function hubUsage(): string {
  const rows = SETTINGS.map((s) => ({ left: `--${s.flag}${s.arg === undefined ? '' : ` ${s.arg}`}`, env: [s.env, ...s.twins].join(', '), help: s.help }));
  const width = Math.max(...rows.map((row) => row.left.length)) + 2;
  const indent = `  ${''.padEnd(width)}`;
  const lines = rows.map((row) => {
    const [first = '', ...rest] = wrap(row.help, 96 - indent.length);
    return [`  ${row.left.padEnd(width)}${first}`, ...rest.map((line) => indent + line), `${indent}env ${row.env}`].join('\n');
  });
  return `Usage: serve-sse hub [options]

A standalone SSE hub: backends POST /publish (with a JWT), browsers GET /events?topic=...;
and a Mercure hub at /.well-known/mercure (draft-07 and draft-08).
Flags win over their environment variables, which win over Mercure's MERCURE_EXTRA_DIRECTIVES
(anonymous, cors_origins, publish_origins, subscriptions). Prefer the environment for keys:
a command line is visible to every user of the machine.

Options:
${lines.join('\n')}
  ${'--version'.padEnd(width)}Print the version.
  ${'-h, --help'.padEnd(width)}Show this help.

Install: the hub server's dependencies (pino, jose, ioredis) come with "npm install serve-sse-hub".

Endpoints:
  GET  /events?topic=a&topic=b   subscribe (Last-Event-ID or ?lastEventId= replays)
  POST /publish                  JSON {"topic"|"topics", "event"?, "data"} or the same as form fields
  GET  /healthz                  liveness: 200 while serving, 503 while shutting down
  GET  /readyz                   readiness: 503 while shutting down or while the backplane is disconnected
  GET  /metrics                  Prometheus text format
  GET  /.well-known/mercure      Mercure: subscribe (?topic= draft-07, ?match= / ?match_urlpattern= draft-08)
  POST /.well-known/mercure      Mercure: publish (form fields topic, data, private, id, type, retry)
  GET  /.well-known/mercure/subscriptions[/...]   Mercure: active subscriptions
  GET  /ui                       with --ui: the dashboard (figures stream at GET /ui/stats)
`;
}

/** Words into lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  return [...lines, line];
}

function integer(value: string, where: string, min: number, max: number): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < min || number > max) {
    throw new ConfigError(`${where} must be an integer from ${min} to ${max === MAX_INT ? 'any' : max}; got ${JSON.stringify(value)}`);
  }
  return number;
}

function nonEmpty(value: string, where: string): string {
  if (value.trim() === '') throw new ConfigError(`${where} must not be empty`);
  return value;
}

function redisUrl(value: string, where: string): string {
  return urlWith(['redis:', 'rediss:'], 'a redis:// or rediss:// URL', value, where);
}

function httpUrl(value: string, where: string): string {
  return urlWith(['http:', 'https:'], 'an http:// or https:// URL', value, where);
}

/** `value`, a URL with one of `schemes` (`redis:`), which `what` describes. */
function urlWith(schemes: readonly string[], what: string, value: string, where: string): string {
  let protocol: string | undefined;
  try {
    protocol = new URL(value).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol === undefined || !schemes.includes(protocol)) throw new ConfigError(`${where} must be ${what}; got ${JSON.stringify(value)}`);
  return value;
}

/** Comma-separated, blanks ignored; at least one. */
function listOf(value: string, where: string, what: string): string[] {
  const items = value.split(',').map((item) => item.trim()).filter((item) => item !== '');
  if (items.length === 0) throw new ConfigError(`${where} needs at least one ${what}`);
  return items;
}

function corsOrigins(value: string, where: string): '*' | string[] {
  const origins = listOf(value, where, 'origin');
  if (origins.includes('*')) {
    if (origins.length > 1) throw new ConfigError(`${where}: "*" allows every origin and cannot be mixed with others`);
    return '*';
  }
  try {
    // The same check the handlers make, at start-up rather than on the first request.
    resolveCors(origins);
  } catch (error) {
    throw new ConfigError(`${where}: ${(error as Error).message.replace(/^serve-sse: option cors needs /, 'each origin must be ')}`);
  }
  return origins;
}

function boolean(value: string, where: string): boolean {
  const lower = value.toLowerCase();
  if (lower === '1' || lower === 'true' || lower === 'yes') return true;
  if (lower === '0' || lower === 'false' || lower === 'no') return false;
  throw new ConfigError(`${where} must be 1/true/yes or 0/false/no; got ${JSON.stringify(value)}`);
}

function algorithm(value: string, where: string): string {
  const found = ALGORITHMS.find((alg) => alg.toLowerCase() === value.toLowerCase());
  if (found === undefined) throw new ConfigError(`${where} must be one of ${ALGORITHMS.join(', ')}; got ${JSON.stringify(value)}`);
  return found;
}

function originList(value: string, where: string): string[] {
  const origins = listOf(value, where, 'origin');
  for (const origin of origins) {
    if (origin !== '*' && !/^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]+$/i.test(origin)) {
      throw new ConfigError(`${where}: each origin must be scheme://host[:port] with no path; got ${JSON.stringify(origin)}`);
    }
  }
  return origins;
}

function logLevel(value: string, where: string): LogLevel {
  const level = LOG_LEVELS.find((item) => item === value.toLowerCase());
  if (level === undefined) throw new ConfigError(`${where} must be one of ${LOG_LEVELS.join(', ')}; got ${JSON.stringify(value)}`);
  return level;
}
