// A forked benchmark process (server variant or load client) and the request/reply protocol
// the runner speaks with it over IPC. Every child is tracked, so that whatever happens to the
// runner (error, timeout, Ctrl-C) `killAll` can end exactly the processes it started.
import { fork } from 'node:child_process';

const live = new Set();
const STDERR_LINES_KEPT = 20;

export class Child {
  /**
   * @param {string} file  module to fork
   * @param {string} label  for messages
   * @param {string[]} [args]  its command-line arguments
   */
  constructor(file, label, args = []) {
    this.label = label;
    this.stderr = [];
    this.exited = false;
    this.nextId = 1;
    this.pending = new Map(); // id -> { resolve, reject, timer }
    this.waiters = new Map(); // message type -> [resolve]
    this.proc = fork(file, args, {
      // --expose-gc: memory figures are taken after a full GC.
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    live.add(this);
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (text) => this.keepStderr(text));
    this.proc.on('message', (msg) => this.onMessage(msg));
    this.proc.on('exit', (code, signal) => this.onExit(code, signal));
  }

  /** Sends a command and resolves with the child's reply value; rejects on error or timeout. */
  request(cmd, payload = {}, timeoutMs = 30_000) {
    if (this.exited) return Promise.reject(new Error(`${this.label} has exited`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.label}: no reply to "${cmd}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.proc.send({ ...payload, cmd, id });
    });
  }

  /** Resolves with the next unsolicited message of `type`, or null after `timeoutMs`. */
  waitFor(type, timeoutMs) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(null), timeoutMs);
      const done = (msg) => {
        clearTimeout(timer);
        const list = this.waiters.get(type) ?? [];
        this.waiters.set(type, list.filter((w) => w !== done));
        resolve(msg);
      };
      this.waiters.set(type, [...(this.waiters.get(type) ?? []), done]);
    });
  }

  onMessage(msg) {
    if (msg.type === 'reply') {
      const entry = this.pending.get(msg.id);
      if (!entry) return; // timed out already
      this.pending.delete(msg.id);
      clearTimeout(entry.timer);
      if (msg.ok) entry.resolve(msg.value);
      else entry.reject(new Error(`${this.label}: ${msg.error}`));
      return;
    }
    for (const waiter of this.waiters.get(msg.type) ?? []) waiter(msg);
  }

  onExit(code, signal) {
    this.exited = true;
    live.delete(this);
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new Error(`${this.label} exited (${signal ?? code})${this.stderrTail()}`));
    }
    this.pending.clear();
    for (const waiters of this.waiters.values()) for (const waiter of waiters) waiter(null);
  }

  // A child's stderr is kept (bounded) to explain a failure, and echoed up to a few lines:
  // a library that logs once per client must not flood the benchmark's output.
  keepStderr(text) {
    for (const line of text.split('\n')) {
      if (!line) continue;
      if (this.stderr.length < STDERR_LINES_KEPT) {
        this.stderr.push(line);
        if (this.stderr.length <= 5) process.stderr.write(`  [${this.label}] ${line}\n`);
      }
    }
  }

  stderrTail() {
    return this.stderr.length ? `: ${this.stderr.slice(-5).join(' | ')}` : '';
  }

  kill() {
    if (!this.exited) this.proc.kill('SIGKILL');
  }

  /** Kills the process and resolves once it is gone, so the next scenario starts on a quiet machine. */
  async stop() {
    if (this.exited) return;
    const gone = new Promise((resolve) => this.proc.once('exit', resolve));
    this.kill();
    await gone;
  }
}

export function killAll() {
  for (const child of live) child.kill();
}

/**
 * The child side of the protocol: answers the runner's requests with `commands[msg.cmd](msg)`,
 * and exits when the runner is gone (crashed, killed), since nothing is left to serve.
 */
export function answerRequests(commands) {
  process.on('message', async (msg) => {
    const command = commands[msg.cmd];
    try {
      if (!command) throw new Error(`unknown command ${msg.cmd}`);
      process.send({ type: 'reply', id: msg.id, ok: true, value: await command(msg) });
    } catch (err) {
      process.send({ type: 'reply', id: msg.id, ok: false, error: String(err?.stack ?? err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

/** Runs a runner's `main`; whatever ends the runner, the processes it started end with it. */
export function runMain(main) {
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      killAll();
      process.exit(130);
    });
  }
  main().catch((err) => {
    console.error(err);
    killAll();
    process.exitCode = 1;
  });
}

/**
 * Forks `file` and waits for its `ready` message (with the port it listens on, if any) for at
 * most `timeoutMs`; a child that never says so is killed, and the error carries its stderr.
 */
export async function startChild(file, label, args, timeoutMs) {
  const child = new Child(file, label, args);
  const ready = await child.waitFor('ready', timeoutMs);
  if (!ready) {
    child.kill();
    throw new Error(`${label} did not start${child.stderrTail()}`);
  }
  child.port = ready.port;
  return child;
}
