/**
 * The keys a Mercure hub verifies tokens with, one set per role (publisher, subscriber), and the
 * algorithms it accepts with them. Everything is decided from the configuration, at start-up,
 * never from the token: the allowlist is the configured algorithm (or, for a JWKS, the
 * asymmetric algorithms below), `none` is never on it, a secret is only ever an HMAC key and a
 * public key is only ever used with an algorithm of its own type (no algorithm confusion).
 */
import { KeyObject, X509Certificate, createPublicKey } from 'node:crypto';
import { createRemoteJWKSet, importSPKI, importX509, type JWTVerifyGetKey } from 'jose';
import { ALGORITHMS, ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS } from './algorithms.js';

export { ALGORITHMS, ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS };
/** Where key trouble is told: configuration warnings, and why tokens were refused (never the tokens). */
export type AuthLogger = (level: 'debug' | 'warn', message: string, details?: Record<string, unknown>) => void;

/** A key given as an object rather than as text: a Node `KeyObject`, a WebCrypto `CryptoKey`, or the bytes of a secret. */
export type KeyLike = KeyObject | CryptoKey | Uint8Array;

export type Role = 'publisher' | 'subscriber';

/** How one role's tokens are verified: a key (a secret, or a PEM public key or certificate), or a JWKS URL. */
export interface KeyOptions {
  /** An HMAC secret (HS256/384/512), or a PEM public key or certificate (`-----BEGIN …`), or a key object. */
  key?: string | KeyLike;
  /** The one algorithm accepted. Default `HS256` with a secret (as Mercure's); required with a public key; optional with a JWKS. */
  alg?: string;
  /** A JWK Set URL (https, or http on a trusted network): keys chosen by `kid`, refreshed when an unknown one appears. */
  jwksUrl?: string;
  /** Passed to jose's `createRemoteJWKSet`: how long a fetched set is fresh, how long between refetches, and the fetch timeout (ms). */
  jwks?: { cacheMaxAge?: number; cooldownDuration?: number; timeoutDuration?: number };
}

/** The names errors give the options, so that a TypeError names what to fix (`--publisher-key`, `publisherKey`…). */
export interface OptionNames {
  key: string;
  alg: string;
  jwksUrl: string;
}

/** What a JWKS may be used with when no `alg` is configured: never `none`, never an HMAC (a public set cannot hold secrets). */
export const JWKS_ALGORITHMS: readonly string[] = ASYMMETRIC_ALGORITHMS;

/** What the verifier needs: the allowlist, and the key or the function jose resolves it with. */
export interface ResolvedKey {
  readonly algorithms: readonly string[];
  readonly key: CryptoKey | KeyObject | JWTVerifyGetKey;
  /** Whether keys come from a JWKS (which can drop a key: cached verdicts are then kept only as long as the set is). */
  readonly jwks: boolean;
  /** How long a cached verdict may outlive its key's last confirmation, in ms (Infinity for a static key). */
  readonly cacheMaxAge: number;
}

/** jose's default for how long a fetched JWK Set is fresh. */
const JWKS_CACHE_MAX_AGE = 600_000;

export function defaultOptionNames(role: Role): OptionNames {
  return { key: `${role}Key`, alg: `${role}Alg`, jwksUrl: `${role}JwksUrl` };
}

/**
 * A role's key, checked but not yet imported: everything that can be wrong with the configuration
 * is found here, synchronously, so that even a handler built synchronously fails at start-up.
 */
export type KeyPlan =
  | { readonly kind: 'secret'; readonly alg: string; readonly bytes: Uint8Array }
  | { readonly kind: 'spki' | 'x509'; readonly alg: string; readonly pem: string }
  | { readonly kind: 'object'; readonly alg: string; readonly key: KeyObject | CryptoKey }
  | { readonly kind: 'jwks'; readonly algorithms: readonly string[]; readonly url: URL; readonly options: KeyOptions['jwks'] };

/**
 * Checks one role's key options. Throws a TypeError naming the option for any mistake: a missing
 * or unusable key, an algorithm not allowed or unfit for the key, a bad URL.
 */
export function planKey(options: KeyOptions, names: OptionNames, logger?: AuthLogger): KeyPlan {
  const { key, alg, jwksUrl } = options;
  if (alg !== undefined) checkAlg(alg, names);
  if (key !== undefined && jwksUrl !== undefined) throw new TypeError(`${names.key} and ${names.jwksUrl} are exclusive: configure one`);
  if (jwksUrl !== undefined) return jwksPlan(jwksUrl, alg, options.jwks, names, logger);
  if (key === undefined) throw new TypeError(`${names.key} (or ${names.jwksUrl}) is required`);
  if (typeof key === 'string') return textPlan(key, alg, names, logger);
  return objectPlan(key, alg, names, logger);
}

/** The key and allowlist for one role: {@link planKey}, then the import (through jose, bound to the algorithm). */
export async function resolveKey(options: KeyOptions, names: OptionNames, logger?: AuthLogger): Promise<ResolvedKey> {
  return importPlanned(planKey(options, names, logger), names, logger);
}

export async function importPlanned(plan: KeyPlan, names: OptionNames, logger?: AuthLogger): Promise<ResolvedKey> {
  const fixed = (key: CryptoKey | KeyObject, alg: string): ResolvedKey => ({ algorithms: [alg], key, jwks: false, cacheMaxAge: Infinity });
  switch (plan.kind) {
    case 'secret':
      return fixed(await crypto.subtle.importKey('raw', Uint8Array.from(plan.bytes), { name: 'HMAC', hash: HASH[plan.alg]! }, false, ['verify']), plan.alg);
    case 'object':
      return fixed(plan.key, plan.alg);
    case 'spki':
    case 'x509':
      try {
        return fixed(plan.kind === 'spki' ? await importSPKI(plan.pem, plan.alg) : await importX509(plan.pem, plan.alg), plan.alg);
      } catch (error) {
        throw new TypeError(`${names.key}: not a ${plan.alg} public key or certificate (${(error as Error).message})`, { cause: error });
      }
    case 'jwks': {
      const cacheMaxAge = plan.options?.cacheMaxAge ?? JWKS_CACHE_MAX_AGE;
      const key = createRemoteJWKSet(plan.url, { ...plan.options, cacheMaxAge });
      // Fetched now rather than at the first request; a failure is only logged, the set is fetched again when needed.
      key.reload().catch((error: unknown) => logger?.('warn', `the JWK Set at ${plan.url.href} could not be fetched: ${(error as Error).message}`));
      return { algorithms: plan.algorithms, key, jwks: true, cacheMaxAge };
    }
  }
}

function checkAlg(alg: string, names: OptionNames): void {
  if (alg.toLowerCase() === 'none') throw new TypeError(`${names.alg}: "none" is refused: tokens must be signed`);
  if (!ALGORITHMS.includes(alg)) throw new TypeError(`${names.alg}: ${JSON.stringify(alg)} is not one of ${ALGORITHMS.join(', ')}`);
}

const isHmac = (alg: string): boolean => alg.startsWith('HS');
const HASH: Record<string, string> = { HS256: 'SHA-256', HS384: 'SHA-384', HS512: 'SHA-512' };
/** RFC 7518 §3.2: an HMAC key at least as long as the hash. */
const MIN_SECRET_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 };

function secretPlan(bytes: Uint8Array, alg: string, names: OptionNames, logger?: AuthLogger): KeyPlan {
  if (!isHmac(alg)) throw new TypeError(`${names.key}: a secret cannot verify ${alg}`);
  if (bytes.length === 0) throw new TypeError(`${names.key}: the secret is empty`);
  const min = MIN_SECRET_BYTES[alg]!;
  if (bytes.length < min) logger?.('warn', `${names.key} is shorter than ${min} bytes: ${alg} wants at least ${min} random bytes`, { bytes: bytes.length });
  return { kind: 'secret', alg, bytes };
}

/** The label of the first PEM block, or undefined when the text is not PEM. */
function pemLabel(text: string): string | undefined {
  return /^-----BEGIN ([A-Z0-9 ]+)-----/.exec(text)?.[1];
}

const privateKeyError = (names: OptionNames) => new TypeError(`${names.key} is a private key: the hub only verifies, give it the public key`);

function textPlan(raw: string, alg: string | undefined, names: OptionNames, logger?: AuthLogger): KeyPlan {
  // A PEM from an environment variable often comes with its line breaks written as "\n".
  const trimmed = raw.trim();
  const text = trimmed.includes('\n') ? trimmed : trimmed.replace(/\\n/g, '\n');
  const label = pemLabel(text);
  if (label === undefined) {
    const chosen = alg ?? 'HS256';
    if (!isHmac(chosen)) throw new TypeError(`${names.key}: ${chosen} needs a PEM public key or certificate (-----BEGIN PUBLIC KEY----- or -----BEGIN CERTIFICATE-----), not a secret`);
    return secretPlan(new TextEncoder().encode(raw), chosen, names, logger);
  }
  if (alg === undefined) throw new TypeError(`${names.key} is a PEM key: set ${names.alg} to the algorithm its tokens use (${ASYMMETRIC_ALGORITHMS.join(', ')})`);
  // Algorithm confusion: the text of a public key is public, so it must never serve as an HMAC secret.
  if (isHmac(alg)) throw new TypeError(`${names.key} is a PEM key, which cannot be an ${alg} secret: set ${names.alg} to an asymmetric algorithm`);
  if (label.includes('PRIVATE')) throw privateKeyError(names);
  let key: KeyObject;
  let plan: KeyPlan;
  try {
    switch (label) {
      case 'PUBLIC KEY':
        key = createPublicKey(text);
        plan = { kind: 'spki', alg, pem: text };
        break;
      case 'RSA PUBLIC KEY':
        // PKCS#1, which jose does not read: the same key re-encoded as SPKI.
        key = createPublicKey(text);
        plan = { kind: 'spki', alg, pem: key.export({ type: 'spki', format: 'pem' }).toString() };
        break;
      case 'CERTIFICATE':
        key = new X509Certificate(text).publicKey;
        plan = { kind: 'x509', alg, pem: text };
        break;
      default:
        throw new TypeError(`a "${label}" PEM block is not a public key or certificate`);
    }
  } catch (error) {
    throw new TypeError(`${names.key}: not a ${alg} public key or certificate (${(error as Error).message})`, { cause: error });
  }
  if (!keyObjectFits(key, alg)) throw new TypeError(`${names.key}: not a ${alg} public key or certificate (it holds a ${describe(key)} key)`);
  return plan;
}

function describe(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return `${key.asymmetricKeyType ?? key.type}${curve === undefined ? '' : ` ${curve}`}`;
}

/** The key types each asymmetric algorithm verifies with (Node's `asymmetricKeyType`, and for EC the curve). */
function keyObjectFits(key: KeyObject, alg: string): boolean {
  const type = key.asymmetricKeyType;
  if (alg.startsWith('RS')) return type === 'rsa';
  if (alg.startsWith('PS')) return type === 'rsa' || type === 'rsa-pss';
  if (alg.startsWith('ES')) {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return type === 'ec' && curve === { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' }[alg];
  }
  if (alg === 'Ed25519') return type === 'ed25519';
  return type === 'ed25519' || type === 'ed448'; // EdDSA
}

function cryptoKeyFits(key: CryptoKey, alg: string): boolean {
  const algorithm = key.algorithm as { name: string; namedCurve?: string; hash?: { name: string } };
  if (alg.startsWith('RS')) return algorithm.name === 'RSASSA-PKCS1-v1_5' && algorithm.hash?.name === `SHA-${alg.slice(2)}`;
  if (alg.startsWith('PS')) return algorithm.name === 'RSA-PSS' && algorithm.hash?.name === `SHA-${alg.slice(2)}`;
  if (alg.startsWith('ES')) return algorithm.name === 'ECDSA' && algorithm.namedCurve === `P-${alg === 'ES512' ? 521 : alg.slice(2)}`;
  if (alg === 'Ed25519') return algorithm.name === 'Ed25519';
  return algorithm.name === 'Ed25519' || algorithm.name === 'Ed448' || algorithm.name === 'EdDSA';
}

function objectPlan(key: KeyLike, alg: string | undefined, names: OptionNames, logger?: AuthLogger): KeyPlan {
  if (key instanceof Uint8Array) return secretPlan(key, alg ?? 'HS256', names, logger);
  if (key instanceof KeyObject) {
    if (key.type === 'private') throw privateKeyError(names);
    if (key.type === 'secret') return secretPlan(new Uint8Array(key.export()), alg ?? 'HS256', names, logger);
    if (alg === undefined) throw new TypeError(`${names.key} is a public key: set ${names.alg}`);
    if (isHmac(alg) || !keyObjectFits(key, alg)) throw new TypeError(`${names.key}: a ${describe(key)} key cannot verify ${alg}`);
    return { kind: 'object', alg, key };
  }
  if (typeof key === 'object' && key !== null && 'algorithm' in key && 'type' in key) {
    if (key.type === 'private') throw privateKeyError(names);
    const chosen = alg ?? (key.type === 'secret' ? 'HS256' : undefined);
    if (chosen === undefined) throw new TypeError(`${names.key} is a public key: set ${names.alg}`);
    const fits = key.type === 'secret'
      ? isHmac(chosen) && key.algorithm.name === 'HMAC' && (key.algorithm as { hash?: { name: string } }).hash?.name === HASH[chosen]
      : !isHmac(chosen) && cryptoKeyFits(key, chosen);
    if (!fits) throw new TypeError(`${names.key}: a ${key.type} ${key.algorithm.name} key cannot verify ${chosen}`);
    if (!key.usages.includes('verify')) throw new TypeError(`${names.key}: the key's usages do not include "verify"`);
    return { kind: 'object', alg: chosen, key };
  }
  throw new TypeError(`${names.key} must be a string (a secret or a PEM key), a KeyObject, a CryptoKey or a Uint8Array`);
}

function jwksPlan(url: string, alg: string | undefined, options: KeyOptions['jwks'], names: OptionNames, logger?: AuthLogger): KeyPlan {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`${names.jwksUrl}: ${JSON.stringify(url)} is not an absolute URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new TypeError(`${names.jwksUrl}: ${parsed.protocol} is not http: or https:`);
  if (alg !== undefined && isHmac(alg)) throw new TypeError(`${names.alg}: ${alg} is an HMAC algorithm, which a JWKS cannot serve (its keys are public)`);
  if (parsed.protocol === 'http:' && !isLoopback(parsed.hostname)) {
    logger?.('warn', `${names.jwksUrl} is plain http: anyone on the path can substitute keys; use https`, { url: parsed.href });
  }
  return { kind: 'jwks', algorithms: alg === undefined ? JWKS_ALGORITHMS : [alg], url: parsed, options };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
