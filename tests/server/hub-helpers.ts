/** Plumbing for the hub server tests: servers in-process on 127.0.0.1:0, tokens, logs, requests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { SignJWT, type JWTPayload } from 'jose';
import { pino } from 'pino';
import { createHubServer, type HubServer, type HubServerOptions } from '../../src/server/server.js';

/** The built bin (`npm run build` first), for the tests that run `serve-sse hub` as users do. */
export const HUB_BIN = fileURLToPath(new URL('../../dist/esm/cli/main.js', import.meta.url));

/** An environment without the hub's variables, whatever the test runner's shell has. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(PORT|HOST|REDIS_URL|LOG_LEVEL|SERVE_SSE_.*)$/.test(name)) env[name] = value;
  }
  return { ...env, ...extra };
}

/** Kills (SIGKILL, by PID) whichever of `children` still runs: for an after() hook. */
export function killLeft(children: readonly ChildProcess[]): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** The running bin, from `startHubBin`. */
export interface StartedHubBin {
  child: ChildProcess;
  /** From its "serve-sse hub listening" line. */
  url: string;
  /** Everything on stdout so far. */
  stdout(): string;
  /** Everything on stderr so far. */
  stderr(): string;
}

/** The JSON lines of what the bin wrote on stdout (with --workers, every process's), parsed. */
export function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/**
 * Runs `serve-sse hub --host 127.0.0.1 ...args` (HUB_BIN, with `env` over `cleanEnv()`), adds it
 * to `children` (for `killLeft`), and resolves once it writes its "serve-sse hub listening" line
 * (with --workers, the primary's, once every worker listens); rejects if it exits first or writes
 * no such line within `timeoutMs`.
 */
export function startHubBin(
  args: string[],
  { env = {}, children, timeoutMs = 10_000 }: { env?: Record<string, string>; children: ChildProcess[]; timeoutMs?: number },
): Promise<StartedHubBin> {
  const child = spawn(process.execPath, [HUB_BIN, 'hub', '--host', '127.0.0.1', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv(env) });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(`no "serve-sse hub listening" line within ${timeoutMs / 1000} s; stdout: ${stdout}; stderr: ${stderr}`), timeoutMs);
    const onExit = (code: number | null): void => fail(`the hub exited (${code}) before listening; stderr: ${stderr}`);
    const fail = (message: string): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      reject(new Error(message));
    };
    child.on('exit', onExit);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      // Whole lines only: a read can end in the middle of one.
      if (!stdout.endsWith('\n')) return;
      const line = jsonLines(stdout).find((entry) => entry.msg === 'serve-sse hub listening');
      if (line === undefined) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve({ child, url: line.url as string, stdout: () => stdout, stderr: () => stderr });
    });
  });
}

export const PUBLISHER_KEY = 'publisher-key-for-tests-0123456789abcdef';
export const SUBSCRIBER_KEY = 'subscriber-key-for-tests-0123456789abcdef';

export interface TestHub extends HubServer {
  /** Every log line the server wrote, parsed. */
  logs: Array<Record<string, unknown>>;
}

const running: HubServer[] = [];

/** Starts a hub server with pino logging (debug) into memory; `closeAll()` stops every one. */
export async function startHub(options: HubServerOptions = {}): Promise<TestHub> {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const hub = await createHubServer({ port: 0, host: '127.0.0.1', shutdownTimeout: 2000, logger, ...options });
  running.push(hub);
  return Object.assign(hub, { logs });
}

export async function closeAll(): Promise<void> {
  await Promise.all(running.splice(0).map((hub) => hub.close()));
}

interface TokenOptions {
  key?: string;
  /** Seconds since the epoch. */
  exp?: number;
  alg?: string;
}

/** A JWT carrying `payload`, signed by jose: HS256 with the publisher key unless told otherwise. */
export function sign(payload: JWTPayload, { key = PUBLISHER_KEY, exp, alg = 'HS256' }: TokenOptions = {}): Promise<string> {
  const jwt = new SignJWT(payload).setProtectedHeader({ alg }).setIssuedAt();
  if (exp !== undefined) jwt.setExpirationTime(exp);
  return jwt.sign(new TextEncoder().encode(key));
}

export const publisherToken = (topics: string[], options: TokenOptions = {}): Promise<string> => sign({ sse: { publish: topics } }, options);
export const subscriberToken = (topics: string[], options: TokenOptions = {}): Promise<string> =>
  sign({ sse: { subscribe: topics } }, { key: SUBSCRIBER_KEY, ...options });

/** An unsigned token (`alg: none`), which must never be accepted. */
export function unsecuredToken(payload: JWTPayload): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(payload)}.`;
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request over a fresh connection; the whole answer as text. */
export function send(url: string, { method = 'GET', headers = {}, body }: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** `POST /publish` with a JSON body and a bearer token. */
export function publishJson(hub: HubServer, token: string | undefined, body: unknown): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return send(`${hub.url}/publish`, { method: 'POST', headers, body: JSON.stringify(body) });
}

/** The value of one sample in a Prometheus text exposition. */
export function metric(text: string, sample: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return undefined;
}

/** What came back on a raw socket: the bytes, whether the server closed it, and the first answer's parts. */
export interface RawExchange {
  /** Everything received, as latin1 text (one character per byte). */
  received: string;
  /** Whether the socket closed within the wait (by the server, or by a reset: see `error`). */
  closed: boolean;
  /** The socket's error code, if any (ECONNRESET: the server reset the connection). */
  error: string | undefined;
  /** From the first answer: `HTTP/1.1 431 Request Header Fields Too Large`, or undefined if none came. */
  statusLine: string | undefined;
  /** Its headers, names in lower case. */
  headers: Record<string, string>;
  /** What follows its head. */
  body: string;
}

/** Splits raw bytes received into the first answer's status line, headers and the rest. */
export function parseRaw(received: string): Pick<RawExchange, 'statusLine' | 'headers' | 'body'> {
  const end = received.indexOf('\r\n\r\n');
  if (!received.startsWith('HTTP/') || end === -1) return { statusLine: undefined, headers: {}, body: received };
  const [statusLine, ...lines] = received.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { statusLine, headers, body: received.slice(end + 4) };
}

/**
 * Connects to `url`'s host and port over plain TCP, writes `payload` (in pieces with `pauseMs`
 * between them, when given a list), and collects what comes back until the socket closes or
 * `waitMs` passes (then it is destroyed, and `closed` is false).
 */
export async function rawExchange(url: string, payload: string | Buffer | Array<string | Buffer>, { waitMs = 3000, pauseMs = 0 } = {}): Promise<RawExchange> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let received = '';
  let error: string | undefined;
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', (problem: NodeJS.ErrnoException) => (error = problem.code ?? problem.message));
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), waitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  // Not once(socket, 'connect'): it rejects on a refused connection, which is an outcome here.
  await Promise.race([new Promise((resolve) => socket.once('connect', resolve)), closed]);
  for (const [index, piece] of (Array.isArray(payload) ? payload : [payload]).entries()) {
    if (socket.destroyed) break;
    if (index > 0 && pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    // A server that already closed makes the write fail: that shows as `error`, not a throw.
    socket.write(piece, () => {});
  }
  const wasClosed = await closed;
  socket.destroy();
  return { received, closed: wasClosed, error, ...parseRaw(received) };
}
