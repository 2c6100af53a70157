/**
 * @module test/helpers/tcp-proxy
 * A loopback TCP proxy to put between the service and a server (PostgreSQL) so a test can cut the
 * connection and bring it back: `cut()` resets every open connection and stops listening (new
 * connections are refused, as by a server that is down); `restore()` listens on the same port
 * again. Bytes pass through unchanged.
 */

import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private server: Server | null = null;
  private readonly open = new Set<Socket>();
  /** Connections accepted so far (both directions count once). */
  accepted = 0;

  private constructor(
    private readonly target: { readonly host: string; readonly port: number },
    /** The proxy's own port, kept across a cut. */
    public port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(target, 0);
    await proxy.listen();
    return proxy;
  }

  /** True while it forwards. */
  get up(): boolean {
    return this.server !== null;
  }

  private listen(): Promise<void> {
    const server = createServer((client) => this.pipe(client));
    return new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        this.port = (server.address() as AddressInfo).port;
        this.server = server;
        resolve();
      });
    });
  }

  private pipe(client: Socket): void {
    this.accepted++;
    const upstream = connect(this.target.port, this.target.host);
    for (const s of [client, upstream]) {
      this.open.add(s);
      s.on('close', () => this.open.delete(s));
      // Either side failing (or being reset by cut()) ends the pair.
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Resets every connection through the proxy and refuses new ones until `restore()`. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.open) s.resetAndDestroy();
    this.open.clear();
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Forwards again, on the same port. */
  async restore(): Promise<void> {
    if (this.server === null) await this.listen();
  }

  async close(): Promise<void> {
    await this.cut();
  }
}
