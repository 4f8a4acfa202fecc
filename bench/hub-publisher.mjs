// The publishers of the hub-server benchmark: their own process, `concurrency` keep-alive HTTP
// connections POSTing JSON to /publish as fast as the hub answers (with `mercure`, Mercure forms
// to /.well-known/mercure: the Mercure section's HTTP POST variant). Each event's data starts with
// its publish time (monotonic clock, µs), taken just before the request is sent, so the load
// client's latency is publish request to receipt, the whole path through the hub server.
import http from 'node:http';
import { answerRequests } from './lib/child.mjs';
import { nowUs, payload } from './servers/harness.mjs';

/**
 * @param {{ port: number, token: string, topic: string, events: number, concurrency: number,
 *           rate?: number, size: number, timeoutMs: number, mercure?: boolean }} options  with `rate` (events/s),
 *   event n is sent at its slot on a fixed schedule (lateness does not accumulate), else at once
 */
async function publishAll({ port, token, topic, events, concurrency, rate, size, timeoutMs, mercure = false }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const startMs = performance.now();
  const deadline = startMs + timeoutMs;
  const requestUs = [];
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstUs = 0;
  const statuses = {};

  async function worker() {
    while (next < events && performance.now() < deadline) {
      const n = next++;
      if (rate) {
        const wait = startMs + (n * 1000) / rate - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const startUs = nowUs();
      if (firstUs === 0) firstUs = startUs;
      const data = payload(startUs, size);
      const status = await (mercure ? post(agent, port, token, mercureForm(topic, data), MERCURE) : post(agent, port, token, JSON.stringify({ topic, event: 'bench', data }))).catch(() => 0);
      requestUs.push(nowUs() - startUs);
      statuses[status] = (statuses[status] ?? 0) + 1;
      status === 200 ? ok++ : failed++;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const lastUs = nowUs();
  agent.destroy();
  requestUs.sort((a, b) => a - b);
  const at = (p) => (requestUs.length ? requestUs[Math.min(requestUs.length - 1, Math.floor((p / 100) * requestUs.length))] : null);
  return { ok, failed, statuses, firstUs, lastUs, requestUs: { p50: at(50), p99: at(99) } };
}

// With `mercure`, a Mercure publication instead (the Mercure section's POST variant): the form a
// Mercure client (Symfony's, for one) sends to /.well-known/mercure, `topic` and `data`.
const NATIVE = { path: '/publish', type: 'application/json' };
const MERCURE = { path: '/.well-known/mercure', type: 'application/x-www-form-urlencoded' };

function mercureForm(topic, data) {
  return new URLSearchParams({ topic, data }).toString();
}

function post(agent, port, token, body, { path, type } = NATIVE) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent,
        headers: { authorization: `Bearer ${token}`, 'content-type': type, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

answerRequests({ publish: (msg) => publishAll(msg) });
process.send({ type: 'ready' });
