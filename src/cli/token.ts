/**
 * `serve-sse token`: a JWT for a publisher or a subscriber of the hub server, for the given topics
 * and lifetime, signed with the key the hub is configured with (the same flags and environment
 * variables), so that nobody pastes a key into a website to get one. The token carries both
 * claims the hub reads: `sse` (its own endpoints) and `mercure` (`/.well-known/mercure`, the
 * draft-07 dialect; draft-08 `at+jwt` tokens come from an authorization server, not from here).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ALGORITHMS, HMAC_ALGORITHMS } from '../protocols/jwt/algorithms.js';

export const TOKEN_USAGE = `Usage: serve-sse token --role publisher|subscriber --topic T [--topic T ...] [options]

Prints a JWT (and nothing else) that the hub server accepts: "sse" and "mercure" claims that
grant the topics ("*": every topic), signed with the role's key.

Options:
  --role ROLE          publisher or subscriber.
  --topic T            A topic (or Mercure topic selector) the token grants; repeat for more.
  --ttl TIME           Lifetime: 90s, 15m, 12h, 30d, or milliseconds. Default 1h.
  --key KEY            The role's HMAC secret. Default: the hub's own setting, SERVE_SSE_PUBLISHER_KEY
                       (or MERCURE_PUBLISHER_JWT_KEY) for a publisher, SERVE_SSE_SUBSCRIBER_KEY (or
                       MERCURE_SUBSCRIBER_JWT_KEY) for a subscriber.
  --private-key FILE   A PEM private key (PKCS #8), for a hub configured with its public key.
  --alg ALG            Default: the role's SERVE_SSE_<ROLE>_ALG (or MERCURE_<ROLE>_JWT_ALG), else HS256.
  --sub SUBJECT        The token's sub claim (who it is for); Mercure shows it in subscriptions.
  --issuer ISS         The iss claim. Default SERVE_SSE_JWT_ISSUER, if set.
  --audience AUD       The aud claim. Default SERVE_SSE_JWT_AUDIENCE, if set.
  -h, --help           Show this help.
`;

/** A mistake in the command line: printed with a pointer to --help, exit 2. */
export class TokenUsageError extends Error {}

type Role = 'publisher' | 'subscriber';

export interface TokenRequest {
  role: Role;
  topics: string[];
  /** Lifetime in seconds. */
  ttl: number;
  alg: string;
  /** An HMAC secret, or a PEM private key. */
  key: string;
  sub?: string;
  issuer?: string;
  audience?: string;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90s`, `15m`, `12h`, `30d`, or milliseconds, to whole seconds (at least one). */
export function parseTtl(value: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(value);
  if (match === null) throw new TokenUsageError(`--ttl must be a duration such as 90s, 15m, 12h, 30d or a number of milliseconds, got ${JSON.stringify(value)}`);
  const amount = Number(match[1]);
  const unit = match[2];
  const seconds = unit === undefined || unit === 'ms' ? Math.ceil(amount / 1000) : amount * UNITS[unit]!;
  if (!Number.isSafeInteger(seconds) || seconds < 1) throw new TokenUsageError(`--ttl must be at least one second, got ${JSON.stringify(value)}`);
  return seconds;
}

/** The command line and the hub's environment variables, checked. */
export function parseTokenArgs(args: readonly string[], env: NodeJS.ProcessEnv): { help: true } | { help: false; request: TokenRequest } {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        role: { type: 'string' },
        topic: { type: 'string', multiple: true },
        ttl: { type: 'string' },
        key: { type: 'string' },
        'private-key': { type: 'string' },
        alg: { type: 'string' },
        sub: { type: 'string' },
        issuer: { type: 'string' },
        audience: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new TokenUsageError((error as Error).message);
  }
  if (values.help === true) return { help: true };
  const role = values.role;
  if (role !== 'publisher' && role !== 'subscriber') throw new TokenUsageError(`--role must be publisher or subscriber, got ${role === undefined ? 'nothing' : JSON.stringify(role)}`);
  const topics = (values.topic as string[] | undefined) ?? [];
  if (topics.length === 0) throw new TokenUsageError('--topic is required: the topics the token grants ("*" for every topic)');
  if (topics.some((topic) => topic === '')) throw new TokenUsageError('--topic must not be empty');
  const ROLE = role.toUpperCase();
  const alg = (values.alg as string | undefined) ?? env[`SERVE_SSE_${ROLE}_ALG`] ?? env[`MERCURE_${ROLE}_JWT_ALG`] ?? 'HS256';
  if (!ALGORITHMS.includes(alg)) throw new TokenUsageError(`--alg must be one of ${ALGORITHMS.join(', ')}, got ${JSON.stringify(alg)}`);
  const hmac = (HMAC_ALGORITHMS as readonly string[]).includes(alg);
  const privateKeyFile = values['private-key'] as string | undefined;
  let key: string | undefined;
  if (privateKeyFile !== undefined) {
    if (hmac) throw new TokenUsageError(`--private-key is for asymmetric algorithms; ${alg} signs with a secret (--key)`);
    try {
      key = readFileSync(privateKeyFile, 'utf8');
    } catch (error) {
      throw new TokenUsageError(`--private-key: cannot read ${privateKeyFile}: ${(error as Error).message}`);
    }
  } else {
    if (!hmac) throw new TokenUsageError(`${alg} signs with a private key: give --private-key FILE (the hub holds the public key)`);
    key = (values.key as string | undefined) ?? env[`SERVE_SSE_${ROLE}_KEY`] ?? env[`MERCURE_${ROLE}_JWT_KEY`];
    if (key === undefined || key === '') {
      throw new TokenUsageError(`no ${role} key: give --key, or set SERVE_SSE_${ROLE}_KEY as for the hub`);
    }
  }
  const request: TokenRequest = { role, topics, ttl: parseTtl((values.ttl as string | undefined) ?? '1h'), alg, key };
  const sub = values.sub as string | undefined;
  const issuer = (values.issuer as string | undefined) ?? env.SERVE_SSE_JWT_ISSUER;
  const audience = (values.audience as string | undefined) ?? env.SERVE_SSE_JWT_AUDIENCE;
  if (sub !== undefined) request.sub = sub;
  if (issuer !== undefined && issuer !== '') request.issuer = issuer;
  if (audience !== undefined && audience !== '') request.audience = audience;
  return { help: false, request };
}

/** Signs the token. jose is loaded here only: the rest of the bin runs without it. */
export async function mintToken(request: TokenRequest, now = Date.now()): Promise<string> {
  const { SignJWT, importPKCS8 } = await import('jose');
  const action = request.role === 'publisher' ? 'publish' : 'subscribe';
  const jwt = new SignJWT({ sse: { [action]: request.topics }, mercure: { [action]: request.topics } })
    .setProtectedHeader({ alg: request.alg, typ: 'JWT' })
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(Math.floor(now / 1000) + request.ttl);
  if (request.sub !== undefined) jwt.setSubject(request.sub);
  if (request.issuer !== undefined) jwt.setIssuer(request.issuer);
  if (request.audience !== undefined) jwt.setAudience(request.audience);
  if ((HMAC_ALGORITHMS as readonly string[]).includes(request.alg)) return jwt.sign(new TextEncoder().encode(request.key));
  let privateKey;
  try {
    privateKey = await importPKCS8(request.key, request.alg);
  } catch (error) {
    throw new TokenUsageError(`--private-key is not a PEM PKCS #8 private key for ${request.alg}: ${(error as Error).message}`);
  }
  return jwt.sign(privateKey);
}

/** The command: exit 0 with the token on stdout, 2 for a usage mistake, 1 when jose is missing. */
export async function runToken(args: readonly string[]): Promise<void> {
  try {
    const parsed = parseTokenArgs(args, process.env);
    if (parsed.help) {
      process.stdout.write(TOKEN_USAGE);
      return;
    }
    process.stdout.write(`${await mintToken(parsed.request)}\n`);
  } catch (error) {
    if (!(error instanceof TokenUsageError)) throw error;
    process.stderr.write(`serve-sse token: ${error.message}\nRun "serve-sse token --help" for the options.\n`);
    process.exit(2);
  }
}
