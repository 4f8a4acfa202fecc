/** Tokens and key sets for the Mercure auth tests: signed by jose, keys generated per run, a JWKS server on loopback. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';

export const SECRET = '!ChangeThisMercureHubJWTSecretKey!';
export const HUB = 'https://hub.example.com/.well-known/mercure';

type SigningKey = CryptoKey | Uint8Array;

export interface SignOptions {
  alg?: string;
  key?: SigningKey;
  typ?: string;
  kid?: string;
  /** Seconds from now; undefined: no `exp`. */
  expiresIn?: number;
  /** Seconds from now. */
  notBefore?: number;
}

export const secretBytes = (secret = SECRET): Uint8Array => new TextEncoder().encode(secret);

/** A JWT with `payload`, HS256 with {@link SECRET} unless told otherwise. */
export async function sign(payload: JWTPayload, options: SignOptions = {}): Promise<string> {
  const alg = options.alg ?? 'HS256';
  const header: Record<string, string> = { alg };
  if (options.typ !== undefined) header.typ = options.typ;
  if (options.kid !== undefined) header.kid = options.kid;
  const jwt = new SignJWT(payload).setProtectedHeader(header as { alg: string }).setIssuedAt();
  const now = Math.floor(Date.now() / 1000);
  if (options.expiresIn !== undefined) jwt.setExpirationTime(now + options.expiresIn);
  if (options.notBefore !== undefined) jwt.setNotBefore(now + options.notBefore);
  return jwt.sign(options.key ?? secretBytes());
}

/** A draft-08 access token (`typ: at+jwt`, `aud` the hub, an hour of life) with these details. */
export function accessToken(details: unknown, options: SignOptions & { aud?: string | string[]; iss?: string; extra?: JWTPayload } = {}): Promise<string> {
  const payload: JWTPayload = { aud: options.aud ?? HUB, ...options.extra };
  if (details !== undefined) payload.authorization_details = details;
  if (options.iss !== undefined) payload.iss = options.iss;
  return sign(payload, { typ: 'at+jwt', expiresIn: 3600, ...options });
}

/** A token signed with `alg: none`, built by hand (jose will not make one). */
export function unsecured(payload: object, header: object = { alg: 'none' }): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part(header)}.${part(payload)}.`;
}

/** A token whose header and payload are as given, "signed" with HMAC over a key of our choosing. */
export async function hmacWith(keyText: string, alg: 'HS256', payload: object, header: object = { alg }): Promise<string> {
  const { createHmac } = await import('node:crypto');
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${part(header)}.${part(payload)}`;
  return `${input}.${createHmac('sha256', keyText).update(input).digest('base64url')}`;
}

export interface KeyPair {
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  pem: string;
}

export async function keyPair(alg: string, options: { crv?: string } = {}): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  return { alg, privateKey, publicKey, pem: await exportSPKI(publicKey) };
}

/** A JWK Set served on 127.0.0.1, whose keys the test replaces at will; it counts its requests. */
export class JwksServer {
  keys: JWK[] = [];
  requests = 0;
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<JwksServer> {
    const server = createServer();
    const jwks = new JwksServer(server);
    server.on('request', (req: IncomingMessage, res) => {
      jwks.requests += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: jwks.keys }));
      req.resume();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return jwks;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/jwks.json`;
  }

  /** Publishes `pair`'s public key under `kid`. */
  async add(pair: KeyPair, kid: string, declareAlg = true): Promise<void> {
    const jwk = await exportJWK(pair.publicKey);
    this.keys.push({ ...jwk, kid, use: 'sig', ...(declareAlg ? { alg: pair.alg } : {}) });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** A Fetch Request to the hub with these headers. */
export function fetchRequest(path: string, headers: Record<string, string> = {}): Request {
  return new Request(new URL(path, HUB).href, { headers });
}

/** Enough of a Node request for the extraction code: its URL and raw header list. */
export function nodeRequest(path: string, rawHeaders: string[] = []): IncomingMessage {
  return { url: path, rawHeaders, headers: {} } as unknown as IncomingMessage;
}
