/**
 * @module connectors/teams/client
 * The only file that imports the Microsoft Graph SDK (@microsoft/microsoft-graph-client). It
 * offers the six Graph calls the connector makes, each failing with a `TeamsGraphError` that
 * carries the status, Graph's error code and `Retry-After`. The app's client-credentials token
 * is not requested here: it comes from the OAuth layer's app grant (src/oauth/app-token.ts), and
 * `tokenEndpointError` says how its failures read. Nothing here logs, and no message built here
 * holds a token or the client secret.
 *
 * Why the client is built with `Client.initWithMiddleware` and our own auth middleware rather
 * than the SDK's default chain: the default AuthenticationHandler sends `Authorization` only to
 * `https://` Graph hosts (or `customHosts`) and deletes it otherwise, which is a good rule we
 * keep, in a stricter form: `BearerMiddleware` adds the token only to URLs under the one
 * configured Graph base URL, deletes it everywhere else, and the constructor refuses a plain
 * `http://` base URL unless its host is loopback. So production sends the token to
 * https://graph.microsoft.com (or the national cloud or proxy the operator configured) and
 * nowhere else, while the tests' fake Graph can run on plain http on 127.0.0.1 without a test
 * certificate, a private key on disk or a process-wide CA override (NODE_EXTRA_CA_CERTS must be
 * set before Node starts, so it does not fit a jest worker). The default chain's RetryHandler is
 * left out on purpose as well: it would sleep through `Retry-After` itself, in real time, hidden
 * from the connector whose limiter, health and clock must see every 429.
 */

import {
  Client,
  HTTPMessageHandler,
  GraphError,
  type Context,
  type Middleware,
  type MiddlewareOptions,
} from '@microsoft/microsoft-graph-client';

import type {
  GraphPresence,
  GraphPresencesResponse,
  GraphSubscription,
  GraphSubscriptionPage,
  GraphSubscriptionRequest,
} from './types';

export const DEFAULT_GRAPH_URL = 'https://graph.microsoft.com';
/** getPresencesByUserId takes at most 650 ids, and a presence subscription filter as many. */
export const MAX_IDS_PER_CALL = 650;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Whether a URL may carry a bearer token: https anywhere, plain http only to this machine. */
export function isSafeTokenUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname));
}

/** A bound on `@odata.nextLink` pages followed by one listing (a looping link must end). */
export const MAX_LIST_PAGES = 100;

export type GraphErrorKind =
  'network' | 'rate_limited' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict' | 'server' | 'client';

/** A failed Graph call. `status` is 0 when no response came (network, timeout). */
export class TeamsGraphError extends Error {
  override name = 'TeamsGraphError';

  constructor(
    readonly operation: string,
    readonly status: number,
    readonly code: string | null,
    detail: string,
    /** The raw `Retry-After` header, for the caller to read against its own clock. */
    readonly retryAfter: string | null,
  ) {
    super(
      status === 0
        ? `Graph ${operation}: no response (${detail})`
        : `Graph ${operation}: ${status}${code === null ? '' : ` ${code}`}${detail === '' ? '' : `: ${detail}`}`,
    );
  }

  get kind(): GraphErrorKind {
    const s = this.status;
    if (s === 0) return 'network';
    if (s === 429) return 'rate_limited';
    if (s === 401) return 'unauthorized';
    if (s === 403) return 'forbidden';
    if (s === 404) return 'not_found';
    if (s === 409) return 'conflict';
    if (s >= 500) return 'server';
    return 'client';
  }
}

/** The token endpoint refused the app's client credentials (or did not answer). */
export class TokenEndpointError extends Error {
  override name = 'TokenEndpointError';

  constructor(
    /** 0 when no response came. */
    readonly status: number,
    /** The OAuth `error` code (`invalid_client`, `invalid_grant`, …), when the body had one. */
    readonly error: string | null,
    message: string,
    /** Refused before any request (the configuration cannot work): waiting will not help. */
    readonly refusedLocally = false,
  ) {
    super(message);
  }

  /** Whether waiting may help (the endpoint was down) rather than fixing the configuration. */
  get transient(): boolean {
    if (this.refusedLocally) return false;
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

/**
 * The per-request middleware option: it brings the bearer token in, and takes the response's
 * status and `Retry-After` out (the SDK copies headers onto its GraphError only when the body was
 * a Graph error object, and a proxy's bare 429 or 503 must be read as well). The token is fetched
 * before the SDK is called, so a token-endpoint failure surfaces as itself rather than wrapped
 * into a GraphError.
 */
class RequestAuth implements MiddlewareOptions {
  status = 0;
  retryAfter: string | null = null;

  constructor(readonly token: string) {}
}

/** Adds `Authorization: Bearer …` to requests under the Graph base URL, and only to those. */
class BearerMiddleware implements Middleware {
  private next: Middleware | undefined;

  constructor(private readonly prefix: string) {}

  async execute(context: Context): Promise<void> {
    // RequestInfo is a DOM type this project's lib settings do not describe: read it plainly.
    const request: unknown = context.request;
    const url = typeof request === 'string' ? request : String((request as { url?: unknown }).url);
    const auth = context.middlewareControl?.getMiddlewareOptions(RequestAuth) as RequestAuth | undefined;
    context.options ??= {};
    const headers = context.options.headers;
    const value = auth !== undefined && url.startsWith(this.prefix) ? `Bearer ${auth.token}` : null;
    if (headers instanceof Headers) {
      if (value === null) headers.delete('Authorization');
      else headers.set('Authorization', value);
    } else {
      const plain: Record<string, string> = { ...(headers as Record<string, string> | undefined) };
      for (const k of Object.keys(plain)) if (k.toLowerCase() === 'authorization') delete plain[k];
      if (value !== null) plain.Authorization = value;
      context.options.headers = plain;
    }
    if (this.next === undefined) throw new Error('BearerMiddleware needs a next middleware');
    await this.next.execute(context);
    if (auth !== undefined && context.response !== undefined) {
      auth.status = context.response.status;
      auth.retryAfter = context.response.headers.get('retry-after');
    }
  }

  setNext(next: Middleware): void {
    this.next = next;
  }
}

export interface TeamsGraphClientOptions {
  /** The Graph root without a version (GRAPH_API_URL), e.g. https://graph.microsoft.com. */
  readonly baseUrl?: string;
  /** Gives the bearer token for each request (the app token, or one user's delegated token). */
  readonly token: () => Promise<string>;
  /** Per request; a hung connection must not stall a poll cycle. */
  readonly timeoutMs?: number;
}

function normalizeBase(baseUrl: string): URL {
  const url = new URL(baseUrl);
  if (!isSafeTokenUrl(url)) {
    throw new Error(
      `the Graph base URL must use https (plain http is accepted for loopback hosts only): ${url.origin}`,
    );
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  url.search = '';
  url.hash = '';
  return url;
}

function detailOf(body: unknown): { code: string | null; message: string } {
  if (typeof body === 'string') {
    try {
      return detailOf(JSON.parse(body) as unknown);
    } catch {
      return { code: null, message: '' };
    }
  }
  if (typeof body === 'object' && body !== null) {
    const b = body as { code?: unknown; message?: unknown; error?: unknown };
    if (typeof b.error === 'object' && b.error !== null) return detailOf(b.error);
    return {
      code: typeof b.code === 'string' ? b.code : null,
      message: typeof b.message === 'string' ? b.message.slice(0, 300) : '',
    };
  }
  return { code: null, message: '' };
}

/** The Graph calls the Teams connector makes, over the official SDK. */
export class TeamsGraphClient {
  private readonly client: Client;
  private readonly timeoutMs: number;
  private readonly token: () => Promise<string>;
  /** `<base>v1.0/`: where an `@odata.nextLink` must point for the token to follow it. */
  private readonly versionRoot: string;

  constructor(options: TeamsGraphClientOptions) {
    const base = normalizeBase(options.baseUrl ?? DEFAULT_GRAPH_URL);
    this.versionRoot = `${base.href}v1.0/`;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.token = options.token;
    this.client = Client.initWithMiddleware({
      baseUrl: base.href,
      defaultVersion: 'v1.0',
      middleware: [new BearerMiddleware(base.href), new HTTPMessageHandler()],
    });
  }

  private async call<T>(
    operation: string,
    path: string,
    send: (request: ReturnType<Client['api']>) => Promise<T>,
  ): Promise<T> {
    const auth = new RequestAuth(await this.token());
    const request = this.client
      .api(path)
      .middlewareOptions([auth])
      .option('signal', AbortSignal.timeout(this.timeoutMs));
    try {
      return await send(request);
    } catch (e) {
      if (e instanceof TeamsGraphError || e instanceof TokenEndpointError) throw e;
      if (e instanceof GraphError) {
        const status = auth.status > 0 ? auth.status : Math.max(e.statusCode, 0);
        const fromBody = detailOf(e.body);
        const code = e.code ?? fromBody.code;
        const retryAfter = auth.retryAfter ?? e.headers?.get('retry-after') ?? null;
        const detail = status === 0 ? e.message || 'request failed' : e.message || fromBody.message;
        throw new TeamsGraphError(operation, status, code, detail.slice(0, 300), retryAfter);
      }
      throw new TeamsGraphError(operation, 0, null, e instanceof Error ? e.name : 'request failed', null);
    }
  }

  // https://learn.microsoft.com/graph/api/cloudcommunications-getpresencesbyuserid
  async getPresencesByUserId(ids: readonly string[]): Promise<GraphPresence[]> {
    if (ids.length === 0) return [];
    if (ids.length > MAX_IDS_PER_CALL) throw new RangeError(`at most ${MAX_IDS_PER_CALL} ids per call`);
    const res = await this.call(
      'getPresencesByUserId',
      '/communications/getPresencesByUserId',
      (r) => r.post({ ids }) as Promise<GraphPresencesResponse | undefined>,
    );
    const value: unknown = res?.value;
    return Array.isArray(value) ? (value as GraphPresence[]) : [];
  }

  // https://learn.microsoft.com/graph/api/subscription-post-subscriptions
  // (presence specifics: https://learn.microsoft.com/graph/changenotifications-for-presence)
  createSubscription(body: GraphSubscriptionRequest): Promise<GraphSubscription> {
    return this.call(
      'create subscription',
      '/subscriptions',
      (r) => r.post(body) as Promise<GraphSubscription>,
    );
  }

  // https://learn.microsoft.com/graph/api/subscription-update
  renewSubscription(id: string, expirationDateTime: string): Promise<GraphSubscription> {
    return this.call(
      'renew subscription',
      `/subscriptions/${encodeURIComponent(id)}`,
      (r) => r.patch({ expirationDateTime }) as Promise<GraphSubscription>,
    );
  }

  // https://learn.microsoft.com/graph/api/subscription-delete
  async deleteSubscription(id: string): Promise<void> {
    await this.call(
      'delete subscription',
      `/subscriptions/${encodeURIComponent(id)}`,
      (r) => r.delete() as Promise<unknown>,
    );
  }

  /**
   * https://learn.microsoft.com/graph/api/subscription-list: with a delegated token, the
   * subscriptions this app created for the signed-in user (presence allows no app-only listing,
   * as it allows no app-only presence subscription). `clientState` comes back null ("not returned
   * for security purposes"). Pages are followed through `@odata.nextLink`
   * (https://learn.microsoft.com/graph/paging), an absolute URL: it is followed only under the
   * configured Graph base (the SDK would take any https host from it, and reads a plain-http
   * loopback link as a path), as a path the SDK joins to that base again.
   */
  async listSubscriptions(): Promise<GraphSubscription[]> {
    const out: GraphSubscription[] = [];
    let path = '/subscriptions';
    for (let page = 1; ; page++) {
      const res = await this.call(
        'list subscriptions',
        path,
        (r) => r.get() as Promise<GraphSubscriptionPage | undefined>,
      );
      const value: unknown = res?.value;
      if (Array.isArray(value)) {
        for (const s of value as unknown[]) {
          const sub = s as Partial<GraphSubscription> | null;
          if (typeof sub?.id === 'string' && typeof sub.expirationDateTime === 'string') {
            out.push(sub as GraphSubscription);
          }
        }
      }
      const next = res?.['@odata.nextLink'];
      if (typeof next !== 'string' || next === '') return out;
      if (!next.startsWith(this.versionRoot) || page >= MAX_LIST_PAGES) {
        throw new TeamsGraphError(
          'list subscriptions',
          0,
          null,
          page >= MAX_LIST_PAGES
            ? `more than ${MAX_LIST_PAGES} pages`
            : 'an @odata.nextLink outside the Graph base URL',
          null,
        );
      }
      path = `/${next.slice(this.versionRoot.length)}`;
    }
  }

  // https://learn.microsoft.com/graph/api/subscription-reauthorize (204 No Content)
  async reauthorizeSubscription(id: string): Promise<void> {
    await this.call(
      'reauthorize subscription',
      `/subscriptions/${encodeURIComponent(id)}/reauthorize`,
      (r) => r.post(undefined) as Promise<unknown>,
    );
  }
}

/**
 * The OAuth layer's app-grant failure (an `OAuthCallError` from `ProviderClient.appToken`) as
 * the connector reports it. Only the status and the OAuth `error` code are kept: AAD's
 * error_description holds trace ids and, for some errors, the client id.
 */
export function tokenEndpointError(e: unknown): TokenEndpointError {
  const o = e as { name?: unknown; status?: unknown; code?: unknown; kind?: unknown; message?: unknown };
  if (e instanceof TokenEndpointError) return e;
  const status = typeof o.status === 'number' ? o.status : null;
  const error = typeof o.code === 'string' ? o.code : null;
  if (o.name === 'OAuthCallError' && status !== null && status !== 200) {
    return new TokenEndpointError(
      status,
      error,
      `the Microsoft token endpoint refused the app's client credentials: ${status}${error === null ? '' : ` ${error}`}`,
    );
  }
  if (o.name === 'OAuthCallError' && status === 200) {
    return new TokenEndpointError(0, null, 'the token endpoint answered without an access_token');
  }
  if (o.name === 'OAuthCallError' && o.kind !== 'transient' && typeof o.message === 'string') {
    // No request was sent (a tenant such as `organizations` names no tenant for an app grant).
    return new TokenEndpointError(
      0,
      null,
      `the Microsoft client credentials cannot be used: ${o.message}`,
      true,
    );
  }
  const reason = e instanceof Error && e.name !== 'OAuthCallError' ? e.name : 'no response';
  return new TokenEndpointError(0, null, `the Microsoft token endpoint did not answer (${reason})`);
}
