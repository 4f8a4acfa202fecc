/**
 * The README's examples as pasted. Every ```js / ```ts block is extracted (a small fence parser),
 * written to a temporary directory as a module of its own, and type-checked by the TypeScript
 * compiler (js: `checkJs` + `strict`; ts: `strict`) against the BUILT package, resolved as users
 * get it: node_modules/serve-sse there is a link to this repository, so `serve-sse/*` goes through
 * package.json's "exports" to dist/*.d.ts (`npm run build` first; npm test does). The packages the
 * blocks import (express, fastify, koa, hono...) are links to this repository's node_modules.
 *
 * A block may call a helper that is the reader's own (`requireLogin`, `getToken`...) only if it says
 * so ("your own") on the line of its first use, or (a ts block) `declare`s it; OWN below declares
 * them for the compiler. Blocks for the browser (EventSource, serve-sse/client) are checked with
 * lib DOM and without Node's types; the others with Node's types (@types/node) and no DOM, as a
 * Node project is set up. Fragments (one-liners with `app` and `handler` free) get a prelude per
 * line from FRAGMENTS.
 *
 * Error messages name README.md's line and tsc's message.
 *
 * Then the node:http example and the hub example run, as pasted, in child processes whose
 * `listen(3000)` a preloaded script turns into 127.0.0.1 on a free port, and an independent parser
 * (`eventsource-parser`) reads their events.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import ts from 'typescript';
import { freePort, OwnRedis, redisServerMissing, withRedis } from './redis.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

interface Block {
  lang: 'js' | 'ts';
  /** README.md's line of the block's first line of code (1-based). */
  line: number;
  code: string;
}

/** The ```js and ```ts blocks of a markdown text (CommonMark fences: ``` or ~~~, closed by a longer or equal one). */
function codeBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  let open: { fence: string; lang: string; line: number; lines: string[] } | undefined;
  markdown.split(/\r?\n/).forEach((text, index) => {
    if (open === undefined) {
      const fence = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/.exec(text);
      if (fence !== null) open = { fence: fence[1]!, lang: fence[2]!.toLowerCase(), line: index + 2, lines: [] };
    } else if (new RegExp(`^ {0,3}\\${open.fence[0]}{${open.fence.length},}\\s*$`).test(text)) {
      const lang = { js: 'js', javascript: 'js', mjs: 'js', ts: 'ts', typescript: 'ts' }[open.lang] as Block['lang'] | undefined;
      if (lang !== undefined) blocks.push({ lang, line: open.line, code: open.lines.join('\n') + '\n' });
      open = undefined;
    } else {
      open.lines.push(text);
    }
  });
  assert.equal(open, undefined, `README.md:${(open?.line ?? 1) - 1}: a code fence is never closed`);
  return blocks;
}

/**
 * The reader's own helpers the README's blocks may call, declared as an app would have them. A
 * block that uses one must say "your own" on the line where it first does.
 */
const OWN: Record<string, string> = {
  requireLogin:
    "declare function requireLogin(req: import('express').Request, res: import('express').Response, next: import('express').NextFunction): void;",
  latestPrices: 'declare function latestPrices(): Promise<Array<{ symbol: string; value: number }>>;',
  getToken: 'declare function getToken(): Promise<string>;',
  render: 'declare function render(data: unknown): void;',
};

/** What an Express app with a login (passport, say) declares: `req.user`. For blocks that import express. */
const EXPRESS_USER = 'export {};\ndeclare global {\n  namespace Express {\n    interface Request {\n      user: { id: string; name: string };\n    }\n  }\n}\n';

/** Stand-ins for the parts of Bun's and Deno's globals the README uses (their types are not installed). */
const BUN_AND_DENO = `declare const Bun: {
  serve(options: { fetch(request: Request, server: { timeout(request: Request, seconds: number): void }): Response | Promise<Response> }): unknown;
};
declare const Deno: { serve(handler: (request: Request) => Response | Promise<Response>): unknown };
`;

/**
 * Fragments: blocks that are a list of one-liners for many frameworks (recognised by `match`), with
 * `app` and `handler` left free as the text around them says. Each line is checked as a module of
 * its own, twice (`handler` is "any serveSse(writer) or hub.handler()"), after a prelude: the
 * import its comment names (so that comment is checked too), then the first of `lines` that matches
 * it, which makes the framework's `app` (or the line's other free names).
 */
const FRAGMENTS: Array<{ match: string; lines: Array<[RegExp, string]> }> = [
  {
    match: 'fastifySse(handler)',
    lines: [
      [/fastifySse\(/, "import Fastify from 'fastify';\nconst app = Fastify();"],
      [/koaSse\(/, "import Koa from 'koa';\nconst app = new Koa();"],
      [/c\.req\.raw/, "import { Hono } from 'hono';\nconst app = new Hono();"],
      [/^export const GET|^(Bun|Deno)\.serve/, ''],
      [/http2\.createSecureServer\(tls/, "import http2 from 'node:http2';\n/** @type {import('node:http2').SecureServerOptions} */\nconst tls = {};"],
    ],
  },
];

const HANDLERS = {
  serveSse: "import { serveSse } from 'serve-sse';\nconst handler = serveSse(async (req, stream) => stream.send({ data: 'hi' }));",
  hub: "import { createHub } from 'serve-sse';\nconst handler = createHub().handler();",
};

// The temporary project: package.json (ESM), node_modules with links, the blocks, the preload.
const DIR = mkdtempSync(join(tmpdir(), 'serve-sse-readme-'));
after(() => rmSync(DIR, { recursive: true, force: true }));
writeFileSync(join(DIR, 'package.json'), JSON.stringify({ type: 'module', private: true }));
mkdirSync(join(DIR, 'node_modules'));
for (const name of readdirSync(join(ROOT, 'node_modules'))) {
  if (!name.startsWith('.')) symlinkSync(join(ROOT, 'node_modules', name), join(DIR, 'node_modules', name), 'dir');
}
symlinkSync(ROOT, join(DIR, 'node_modules', 'serve-sse'), 'dir');
mkdirSync(join(DIR, 'blocks'));

/** Whether a block runs in the browser: it uses EventSource and imports nothing but serve-sse/client. */
function forBrowser(code: string): boolean {
  const imports = [...code.matchAll(/\bfrom\s+'([^']+)'/g)].map((match) => match[1]);
  return /\bEventSource\b/.test(code) && imports.every((specifier) => specifier === 'serve-sse/client');
}

/** The first README line of `block` that uses `name`, 0-based within the block, or -1. */
function firstUse(block: Block, name: string): number {
  return block.code.split('\n').findIndex((text) => new RegExp(`\\b${name}\\b`).test(text.replace(/\/\/.*$/, '')));
}

interface Checked {
  /** README.md's line of the file's first line after the prelude. */
  line: number;
  /** How many lines of prelude come before the README's code in the file. */
  prelude: number;
  path: string;
}

/** Type-checks `files` (with `globals`: .d.ts text) in one program; returns "README.md:line: message" for each error. */
const sourceFiles = new Map<string, ts.SourceFile>();
function typeCheck(files: Checked[], globals: string[], browser: boolean, extra: string[] = []): string[] {
  const name = join(DIR, `globals-${files[0]!.line}.d.ts`);
  writeFileSync(name, globals.join('\n'));
  const options: ts.CompilerOptions = {
    strict: true,
    allowJs: true,
    checkJs: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: browser ? ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'] : ['lib.es2022.d.ts'],
    types: browser ? [] : ['node'],
    skipLibCheck: true,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  // Libraries' declarations are parsed once for every program.
  host.getSourceFile = (fileName, language, ...rest) => {
    if (!fileName.includes('node_modules') && !/[\\/]typescript[\\/]lib[\\/]/.test(fileName)) return getSourceFile(fileName, language, ...rest);
    let file = sourceFiles.get(fileName);
    if (file === undefined) {
      file = getSourceFile(fileName, language, ...rest);
      if (file !== undefined) sourceFiles.set(fileName, file);
    }
    return file;
  };
  const program = ts.createProgram({ rootNames: [name, ...extra, ...files.map((file) => file.path)], options, host });
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    const file = files.find((candidate) => candidate.path === diagnostic.file?.fileName);
    if (file === undefined || diagnostic.file === undefined || diagnostic.start === undefined) {
      return `${diagnostic.file?.fileName ?? '(no file)'}: TS${diagnostic.code}: ${message}`;
    }
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    const where = line < file.prelude ? `(the test's prelude for README.md:${file.line}, line ${line + 1})` : `README.md:${file.line + line - file.prelude}`;
    return `${where}: TS${diagnostic.code}: ${message}`;
  });
}

const blocks = codeBlocks(README);

test('README.md has its js examples, and the parser finds them', () => {
  assert.ok(blocks.length >= 6, `found ${blocks.length} js/ts blocks`);
  assert.ok(blocks.some((block) => block.code.includes("from 'node:http'") && block.code.includes('serveSse(')));
  assert.ok(blocks.some((block) => block.code.includes('createHub(')));
});

for (const block of blocks) {
  const title = (block.code.split('\n').find((text) => text.trim() !== '' && !text.startsWith('//')) ?? '').trim().slice(0, 60);
  test(`README.md:${block.line} (${block.lang}) type-checks as pasted: ${title}`, () => {
    const browser = forBrowser(block.code);
    const problems: string[] = [];
    const globals: string[] = [];
    for (const [name, declaration] of Object.entries(OWN)) {
      const use = firstUse(block, name);
      // A ts block may declare it itself (`declare function getToken(): Promise<string>;`): marked.
      if (use < 0 || new RegExp(`^declare\\s+(function|const|let)\\s+${name}\\b`, 'm').test(block.code)) continue;
      globals.push(declaration);
      if (!/\/\/.*\byour own\b/i.test(block.code.split('\n')[use]!)) {
        problems.push(`README.md:${block.line + use}: ${name} is the reader's own: say so where it is first used (\`// your own: ...\`)`);
      }
    }
    const extra: string[] = [];
    if (/\bfrom\s+'express'/.test(block.code)) {
      extra.push(join(DIR, 'express-user.d.ts'));
      writeFileSync(extra[0]!, EXPRESS_USER);
    }
    const ext = block.lang === 'ts' ? 'ts' : 'js';
    const files: Checked[] = [];
    const fragment = FRAGMENTS.find((candidate) => block.code.includes(candidate.match));
    if (fragment === undefined) {
      const path = join(DIR, 'blocks', `readme-${block.line}.${ext}`);
      writeFileSync(path, block.code);
      files.push({ line: block.line, prelude: 0, path });
    } else {
      globals.push(BUN_AND_DENO);
      block.code.split('\n').forEach((text, index) => {
        if (text.trim() === '' || text.trim().startsWith('//')) return;
        const code = text.replace(/\s*\/\/.*$/, '');
        const named = /\/\/.*?(import .* from '[^']+')/.exec(text)?.[1];
        const own = fragment.lines.find(([pattern]) => pattern.test(code));
        if (own === undefined) {
          problems.push(`README.md:${block.line + index}: a line the test has no prelude for (FRAGMENTS in tests/readme.test.ts): ${text}`);
          return;
        }
        for (const [kind, handler] of Object.entries(HANDLERS)) {
          const prelude = [named === undefined ? '' : `${named};`, handler, own[1]].filter((part) => part !== '').join('\n').split('\n');
          const path = join(DIR, 'blocks', `readme-${block.line + index}-${kind}.${ext}`);
          writeFileSync(path, [...prelude, code, ''].join('\n'));
          files.push({ line: block.line + index, prelude: prelude.length, path });
        }
      });
    }
    problems.push(...new Set(typeCheck(files, globals, browser, extra)));
    assert.deepEqual(problems, [], `\n${problems.join('\n')}\n--- README.md:${block.line} ---\n${block.code}`);
  });
}

// Running the examples.

/** Preloaded: `listen(...)` listens on 127.0.0.1, on a free port, and prints it. */
const PRELOAD = join(DIR, 'listen-on-a-free-port.mjs');
writeFileSync(
  PRELOAD,
  `import http from 'node:http';
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  const callback = typeof args.at(-1) === 'function' ? args.at(-1) : undefined;
  this.once('listening', () => process.stdout.write('README_PORT=' + this.address().port + '\\n'));
  return listen.call(this, 0, '127.0.0.1', callback);
};
`,
);

interface Running {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/** Runs `block` as pasted (the file the type check wrote), with `env`; resolves with its url once it listens. */
async function run(block: Block, env: Record<string, string> = {}): Promise<Running> {
  const path = join(DIR, 'blocks', `readme-${block.line}.js`);
  writeFileSync(path, block.code);
  const child = spawn(process.execPath, ['--import', PRELOAD, path], { cwd: DIR, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const output = () => `stdout: ${stdout}\nstderr: ${stderr}`;
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`README.md:${block.line} did not listen within 10 s\n${output()}`)), 10_000);
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        const port = /README_PORT=(\d+)/.exec(stdout)?.[1];
        if (port !== undefined) {
          clearTimeout(timer);
          resolve(`http://127.0.0.1:${port}`);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`README.md:${block.line} exited (${code ?? signal}) before listening\n${output()}`));
      });
    });
    return { child, url, output };
  } catch (error) {
    await kill(child);
    throw error;
  }
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = once(child, 'exit');
  process.kill(child.pid, 'SIGKILL');
  await exited;
}

interface Reader {
  response: Response;
  /** Resolves with the first `count` events, or rejects after 10 s. */
  events(count: number): Promise<EventSourceMessage[]>;
  close(): void;
}

/** GET `url` with fetch, parsed by eventsource-parser. */
async function read(url: string, headers: Record<string, string> = {}): Promise<Reader> {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  const received: EventSourceMessage[] = [];
  let wake = () => {};
  const parser = createParser({
    onEvent: (event) => {
      received.push(event);
      wake();
    },
  });
  const body = response.body!.getReader();
  const decoder = new TextDecoder();
  void (async () => {
    for (let chunk = await body.read(); !chunk.done; chunk = await body.read()) parser.feed(decoder.decode(chunk.value, { stream: true }));
  })().catch(() => {}); // the abort of close()
  return {
    response,
    events: async (count) => {
      const deadline = Date.now() + 10_000;
      while (received.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${url}: ${received.length} of ${count} events within 10 s: ${JSON.stringify(received)}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      return received.slice(0, count);
    },
    close: () => controller.abort(),
  };
}

const plain = (events: EventSourceMessage[]) => events.map(({ event, id, data }) => ({ event, id, data }));

test('the node:http example runs as pasted: a tick a second, ids 1, 2...', async () => {
  const block = blocks.find((candidate) => candidate.code.includes("from 'node:http'") && candidate.code.includes('serveSse('))!;
  const running = await run(block);
  try {
    const reader = await read(running.url);
    try {
      assert.equal(reader.response.status, 200);
      assert.match(reader.response.headers.get('content-type') ?? '', /^text\/event-stream/);
      assert.deepEqual(plain(await reader.events(2)), [
        { event: 'tick', id: '1', data: '{"n":1}' },
        { event: 'tick', id: '2', data: '{"n":2}' },
      ]);
    } finally {
      reader.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(running.output().replace(/^stdout: README_PORT=\d+\n/, ''), '\nstderr: ', 'nothing on stderr');
  } finally {
    await kill(running.child);
  }
});

// The hub example runs on the Redis backplane (REDIS_URL), on the default key: on a redis-server of
// the test's own, so that it writes nothing into a shared Redis. Skipped loudly without
// redis-server, failed under CI=true (tests/redis.ts).
const noRedisServer = redisServerMissing();

test('the hub example runs as pasted, twice on one Redis: a client of one gets what the other publishes, live and by replay', { skip: noRedisServer }, async () => {
  const block = blocks.find((candidate) => candidate.code.includes('createHub(') && candidate.code.includes('redisBackplane('))!;
  const redis = new OwnRedis(await freePort(), 'readme', { persistence: false });
  const running: Running[] = [];
  const readers: Reader[] = [];
  try {
    await redis.start();
    const env = { REDIS_URL: redis.url };
    /** The ids in the hub's Redis stream, once there are `count`. */
    const ids = async (count: number): Promise<string[]> => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const entries = await withRedis(redis.url, (client) => client.xrange('serve-sse', '-', '+'));
        if (entries.length >= count) return entries.map(([id]) => id);
        if (Date.now() > deadline) throw new Error(`the stream holds ${entries.length} of ${count} entries after 10 s`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    running.push(await run(block, env));
    const [first] = await ids(1);
    const live = await read(`${running[0]!.url}/?topic=prices&topic=news`);
    readers.push(live);
    assert.equal(live.response.status, 200);
    running.push(await run(block, env));
    const [, second] = await ids(2);
    const price = { event: 'price', id: second, data: '{"symbol":"ACME","value":42}' };
    assert.deepEqual(plain(await live.events(1)), [price], 'live, from the other instance');
    const replay = await read(`${running[0]!.url}/?topic=prices`, { 'last-event-id': first! });
    readers.push(replay);
    assert.deepEqual(plain(await replay.events(1)), [price], 'replayed after Last-Event-ID');
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${running.map((one, i) => `--- instance ${i + 1}\n${one.output()}`).join('\n')}`, { cause: error });
  } finally {
    for (const reader of readers) reader.close();
    for (const one of running) await kill(one.child);
    await redis.remove();
  }
});
