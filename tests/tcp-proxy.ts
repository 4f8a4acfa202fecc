/**
 * A TCP proxy on 127.0.0.1:0 in front of a server, for faults a server cannot stage on its own:
 * `freeze()` stops forwarding bytes on the connections open now, both ways, without closing them
 * (what a dead NAT entry or a frozen middlebox does); connections made afterwards forward again.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
  frozen: boolean;
}

export class TcpProxy {
  readonly #pairs = new Set<Pair>();
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  /** Starts a proxy to `target` (a `http://host:port` URL or a port on 127.0.0.1). */
  static async start(target: string | number): Promise<TcpProxy> {
    const { hostname, port } = typeof target === 'number' ? { hostname: '127.0.0.1', port: String(target) } : new URL(target);
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const proxy = new TcpProxy(server, (server.address() as AddressInfo).port);
    server.on('connection', (client) => proxy.#pipe(client, hostname, Number(port)));
    return proxy;
  }

  /** `http://127.0.0.1:<port><path>`. */
  url(path = '/'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Connections open now. */
  get open(): number {
    return this.#pairs.size;
  }

  /** Stops forwarding on every open connection; what arrives on them is dropped. Nothing is closed. */
  freeze(): void {
    for (const pair of this.#pairs) pair.frozen = true;
  }

  /** Closes every connection and the listener. */
  async close(): Promise<void> {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #pipe(client: Socket, host: string, port: number): void {
    this.accepted++;
    const upstream = connect(port, host);
    const pair: Pair = { client, upstream, frozen: false };
    this.#pairs.add(pair);
    const end = (): void => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    // Writes ignore backpressure: test traffic is small.
    client.on('data', (chunk: Buffer) => void (pair.frozen || upstream.write(chunk)));
    upstream.on('data', (chunk: Buffer) => void (pair.frozen || client.write(chunk)));
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
  }
}
