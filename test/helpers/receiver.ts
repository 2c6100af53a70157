/**
 * A loopback HTTP receiver for webhook tests: records every request (headers and raw body) and
 * answers as the test says: a status, extra headers, a delay, or no answer at all.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** performance.now() at arrival. */
  readonly at: number;
}

export interface Reply {
  readonly status?: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly delayMs?: number;
  /** Never answer (until the receiver closes). */
  readonly hang?: boolean;
  /** Answer once this settles: holds a request in flight for as long as the test needs. */
  readonly after?: Promise<unknown>;
}

/** Decides the answer to the n-th request (0-based). A number is a status. */
export type Responder = (req: Received, n: number) => Reply | number | undefined;

export class Receiver {
  readonly received: Received[] = [];
  respond: Responder;
  private waiters: { n: number; resolve: () => void }[] = [];

  private readonly server: Server;

  private constructor(respond: Responder) {
    this.respond = respond;
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  static async start(respond: Responder = () => 204): Promise<Receiver> {
    const self = new Receiver(respond);
    await new Promise<void>((resolve) => self.server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/hook`;
  }

  /** Parsed bodies, in arrival order. */
  bodies<T = { type: string; data: Record<string, unknown> }>(): T[] {
    return this.received.map((r) => JSON.parse(r.body) as T);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      }
      const r: Received = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: performance.now(),
      };
      const n = this.received.length;
      this.received.push(r);
      const answer = this.respond(r, n);
      const reply: Reply = typeof answer === 'number' ? { status: answer } : (answer ?? {});
      this.waiters = this.waiters.filter((w) => {
        if (this.received.length < w.n) return true;
        w.resolve();
        return false;
      });
      if (reply.hang === true) return;
      const send = (): void => {
        res.writeHead(reply.status ?? 204, reply.headers);
        res.end(reply.body);
      };
      if (reply.after !== undefined) void reply.after.then(send, send);
      else if (reply.delayMs !== undefined && reply.delayMs > 0) setTimeout(send, reply.delayMs);
      else send();
    });
  }

  /** Resolves once `n` requests have arrived in all; rejects after `timeoutMs` (a stuck wait: generous). */
  waitFor(n: number, timeoutMs = 60_000): Promise<Received[]> {
    if (this.received.length >= n) return Promise.resolve(this.received);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`receiver got ${this.received.length} requests, expected ${n}`)),
        timeoutMs,
      );
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve(this.received);
        },
      });
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
