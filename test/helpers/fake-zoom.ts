import { createServer, type Server } from 'node:http';

/** A fake Zoom REST API: `GET /v2/users/{id}/presence_status`, Bearer tokens, 429s on demand. */
export class FakeZoomApi {
  readonly statuses = new Map<string, string>();
  readonly calls: { path: string; at: number; auth: string | undefined }[] = [];
  private throttled: { count: number; retryAfter: number } = { count: 0, retryAfter: 0 };
  private server: Server | null = null;
  private port = 0;

  constructor(
    private readonly validToken: (token: string) => boolean,
    private readonly now: () => number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/v2`;
  }

  /** The next `count` requests get 429 with Retry-After. */
  throttle(count: number, retryAfterSeconds: number): void {
    this.throttled = { count, retryAfter: retryAfterSeconds };
  }

  async listen(): Promise<void> {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      this.calls.push({ path, at: this.now(), auth: req.headers.authorization });
      const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      };
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (token === undefined || !this.validToken(token))
        return json(401, { code: 124, message: 'Invalid access token.' });
      if (this.throttled.count > 0) {
        this.throttled.count -= 1;
        return json(
          429,
          { code: 429, message: 'Too many requests' },
          { 'retry-after': String(this.throttled.retryAfter) },
        );
      }
      const m = /^\/v2\/users\/([^/]+)\/presence_status$/.exec(path);
      const status = m === null ? undefined : this.statuses.get(decodeURIComponent(m[1]!));
      if (status === undefined) return json(404, { code: 1001, message: 'User does not exist.' });
      return json(200, { status });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.port = typeof address === 'object' && address !== null ? address.port : 0;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}
