/**
 * @module test/helpers/fake-graph
 * A loopback fake of the Microsoft identity platform's token endpoint and of the Microsoft Graph
 * calls the Teams connector makes, speaking the documented shapes, so that the real Graph SDK and
 * simple-oauth2 run against it unmodified:
 * - `POST /{tenant}/oauth2/v2.0/token` (client_credentials, body client auth), issuing app tokens;
 *   `failToken` makes it refuse (`invalid_grant`, `invalid_client`, any status);
 * - `POST /v1.0/communications/getPresencesByUserId` (≤ 650 ids, app or delegated token);
 * - `POST /v1.0/subscriptions` (delegated tokens only, presence resource, ≤ 60 min, one per owner,
 *   after the validation handshake on both URLs), `PATCH`/`DELETE /v1.0/subscriptions/{id}`,
 *   `POST /v1.0/subscriptions/{id}/reauthorize` (204); `GET /v1.0/subscriptions` (List
 *   subscriptions: with a delegated token, the live ones created for that user, `clientState`
 *   null, `listPageSize` a page, further pages at an absolute `@odata.nextLink` with a
 *   `$skiptoken`; an app token is refused, presence allowing no application permission);
 * - faults on demand (`fail`): 429 with Retry-After, 5xx, anything, for the next n calls;
 * - Graph error bodies `{ error: { code, message, innerError } }`; 401 for a token it did not
 *   issue or has revoked.
 * It sends what Graph sends: the validation handshake, basic change notifications and lifecycle
 * notifications, to the URLs a subscription names. Every Graph request is recorded with the
 * token it carried; `foreignAuth` counts those that did not carry a token this fake issued.
 */

import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { GraphPresence } from '../../connectors/teams/types';
import { parseEnv } from '../../src/config/env';
import type { Clock } from '../../src/core/clock';
import { AppGrants, type AppToken } from '../../src/oauth/app-token';

export type GraphOp = 'presences' | 'create' | 'renew' | 'delete' | 'reauthorize' | 'list';

export interface FakeGraphCall {
  readonly op: GraphOp | 'other';
  readonly method: string;
  readonly path: string;
  /** The query string as sent (`?$skiptoken=…`), or ''. */
  readonly query: string;
  /** The bearer token sent, or null. */
  readonly token: string | null;
  readonly body: unknown;
  readonly at: number;
}

export interface FakeFault {
  readonly status: number;
  readonly retryAfter?: string;
  /** Send a Graph error body (default) or an empty one, as a proxy might. */
  readonly graphBody?: boolean;
}

export interface FakeSubscription {
  readonly id: string;
  readonly resource: string;
  readonly ids: string[];
  readonly notificationUrl: string;
  readonly lifecycleNotificationUrl: string | null;
  readonly clientState: string | null;
  expiresAt: number;
  /** The user whose delegated token created it. */
  readonly owner: string;
  reauthorized: number;
}

export interface HandshakeRecord {
  readonly url: string;
  readonly token: string;
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly ok: boolean;
}

export interface FakeGraphOptions {
  readonly clock: Clock;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly tokenTtlSec?: number;
}

const MAX_IDS = 650;
const MAX_SUB_MS = 60 * 60_000;

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(text === '' ? {} : { 'content-type': 'application/json; charset=utf-8' }),
    ...headers,
  });
  res.end(text);
}

function graphError(res: ServerResponse, status: number, code: string, message: string, headers = {}): void {
  json(
    res,
    status,
    { error: { code, message, innerError: { date: '2026-11-23T14:00:00', 'request-id': randomUUID() } } },
    headers,
  );
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Ids from `/communications/presences?$filter=id in ('a', 'b')`. */
export function idsOfResource(resource: string): string[] | null {
  const m = /^\/?communications\/presences\?\$filter=id in \((.*)\)$/.exec(resource);
  if (m === null) return null;
  const ids = m[1]!.split(',').map((s) => s.trim().replace(/^'|'$/g, '').toLowerCase());
  return ids.every((id) => /^[0-9a-f-]{36}$/.test(id)) ? ids : null;
}

export class FakeGraph {
  readonly calls: FakeGraphCall[] = [];
  readonly tokenRequests: Record<string, string>[] = [];
  readonly handshakes: HandshakeRecord[] = [];
  readonly subscriptions = new Map<string, FakeSubscription>();
  /** AAD object id (lower case) → presence. */
  readonly presences = new Map<string, GraphPresence>();
  /** Graph requests whose bearer token this fake did not issue (or had revoked). */
  foreignAuth = 0;
  /** Subscriptions per page of `GET /subscriptions`. */
  listPageSize = 100;

  private readonly appTokens = new Set<string>();
  private readonly delegated = new Map<string, string>(); // token → user id
  private readonly faults: { op: GraphOp; fault: FakeFault; left: number }[] = [];
  private tokenFault: { status: number; error: string } | null = null;
  /** `$skiptoken` → the rest of a listing (ids, in order) for the user who asked. */
  private readonly listings = new Map<string, { user: string; ids: string[] }>();
  private server: Server | null = null;
  url = '';

  constructor(private readonly o: FakeGraphOptions) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) graphError(res, 500, 'fakeFailure', (e as Error).message);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (s === null) return;
    this.server = null;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  // ------------------------------------------------------------ state and faults

  setPresence(id: string, availability: string, activity: string, extra: Partial<GraphPresence> = {}): void {
    this.presences.set(id.toLowerCase(), { id: id.toLowerCase(), availability, activity, ...extra });
  }

  /** A delegated token for a user, as the auth-code flow would have produced it. */
  issueDelegatedToken(userId: string): string {
    const token = `delegated-${randomBytes(12).toString('hex')}`;
    this.delegated.set(token, userId.toLowerCase());
    return token;
  }

  /** The user withdrew consent: their delegated tokens stop working. */
  revokeDelegated(userId: string): void {
    for (const [t, u] of this.delegated) if (u === userId.toLowerCase()) this.delegated.delete(t);
  }

  /** App tokens already issued stop working (a secret rotated, consent withdrawn). */
  revokeAppTokens(): void {
    this.appTokens.clear();
  }

  /** The token endpoint refuses client credentials until `failToken(null)`. */
  failToken(fault: { status: number; error: string } | null): void {
    this.tokenFault = fault;
  }

  /** The next `times` calls of `op` fail with `fault`. */
  fail(op: GraphOp, fault: FakeFault, times = 1): void {
    this.faults.push({ op, fault, left: times });
  }

  /**
   * A subscription the app made some other way (another resource, another notification URL),
   * for listing tests; `resource` is stored as given.
   */
  seedSubscription(s: {
    owner: string;
    resource: string;
    notificationUrl: string;
    expiresAt: number;
    lifecycleNotificationUrl?: string | null;
  }): FakeSubscription {
    const sub: FakeSubscription = {
      id: randomUUID(),
      resource: s.resource,
      ids: idsOfResource(s.resource) ?? [],
      notificationUrl: s.notificationUrl,
      lifecycleNotificationUrl: s.lifecycleNotificationUrl ?? null,
      clientState: 'seeded',
      expiresAt: s.expiresAt,
      owner: s.owner.toLowerCase(),
      reauthorized: 0,
    };
    this.subscriptions.set(sub.id, sub);
    return sub;
  }

  count(op: GraphOp): number {
    return this.calls.filter((c) => c.op === op).length;
  }

  /** The id lists of every getPresencesByUserId call, in order. */
  presenceBatches(): string[][] {
    return this.calls.filter((c) => c.op === 'presences').map((c) => (c.body as { ids: string[] }).ids);
  }

  /** Whether every Graph call carried a bearer token this fake issued. */
  allCallsAuthenticated(): boolean {
    return this.calls.length > 0 && this.foreignAuth === 0 && this.calls.every((c) => c.token !== null);
  }

  // ------------------------------------------------------------ what Graph sends

  /** The validation handshake Graph sends before creating a subscription. */
  async handshake(
    url: string,
    token = `Validation: Testing client application reachability ${randomUUID()}`,
  ): Promise<HandshakeRecord> {
    const target = `${url}${url.includes('?') ? '&' : '?'}validationToken=${encodeURIComponent(token)}`;
    const res = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
    const body = await res.text();
    const contentType = res.headers.get('content-type') ?? '';
    const record = {
      url,
      token,
      status: res.status,
      contentType,
      body,
      ok: res.status === 200 && body === token && contentType.startsWith('text/plain'),
    };
    this.handshakes.push(record);
    return record;
  }

  /** A basic (2024 shape) change notification for users of a subscription. */
  async notify(
    subscriptionId: string,
    userIds: readonly string[],
    options: { clientState?: string | null; extraItems?: unknown[] } = {},
  ): Promise<{ status: number; body: string; ms: number }> {
    const sub = this.subscriptions.get(subscriptionId);
    if (sub === undefined) throw new Error(`no subscription ${subscriptionId}`);
    const value = userIds.map((id) => ({
      subscriptionId,
      clientState: options.clientState === undefined ? sub.clientState : options.clientState,
      changeType: 'updated',
      resource: sub.resource,
      subscriptionExpirationDateTime: new Date(sub.expiresAt).toISOString(),
      resourceData: {
        '@odata.type': '#Microsoft.Graph.presence',
        '@odata.id': `users/${id}/presence`,
        id,
      },
      tenantId: this.o.tenantId,
    }));
    return this.post(sub.notificationUrl, { value: [...value, ...(options.extraItems ?? [])] });
  }

  /** A lifecycle notification (reauthorizationRequired, subscriptionRemoved, missed). */
  async lifecycle(
    subscriptionId: string,
    event: string,
    options: { clientState?: string | null } = {},
  ): Promise<{ status: number; body: string; ms: number }> {
    const sub = this.subscriptions.get(subscriptionId);
    if (sub === undefined || sub.lifecycleNotificationUrl === null) throw new Error('no lifecycle URL');
    return this.post(sub.lifecycleNotificationUrl, {
      value: [
        {
          lifecycleEvent: event,
          subscriptionId,
          subscriptionExpirationDateTime: new Date(sub.expiresAt).toISOString(),
          clientState: options.clientState === undefined ? sub.clientState : options.clientState,
          tenantId: this.o.tenantId,
        },
      ],
    });
  }

  private async post(url: string, body: unknown): Promise<{ status: number; body: string; ms: number }> {
    const started = performance.now();
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.text(), ms: performance.now() - started };
  }

  // ------------------------------------------------------------ the server

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const text = await readBody(req);
    if (req.method === 'POST' && /^\/[^/]+\/oauth2\/v2\.0\/token$/.test(url.pathname)) {
      this.token(url.pathname.split('/')[1]!, text, res);
      return;
    }
    const m = /^\/v1\.0(\/.*)$/.exec(url.pathname);
    if (m === null) {
      graphError(res, 404, 'UnknownPath', `no route ${url.pathname}`);
      return;
    }
    const path = m[1]!;
    const op = this.opOf(req.method ?? 'GET', path);
    let body: unknown = null;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        graphError(res, 400, 'BadRequest', 'body is not JSON');
        return;
      }
    }
    const auth = req.headers.authorization;
    const token = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : null;
    this.calls.push({
      op,
      method: req.method ?? '',
      path,
      query: url.search,
      token,
      body,
      at: this.o.clock.now(),
    });
    const isApp = token !== null && this.appTokens.has(token);
    const user = token === null ? undefined : this.delegated.get(token);
    if (!isApp && user === undefined) {
      this.foreignAuth += 1;
      graphError(res, 401, 'InvalidAuthenticationToken', 'Access token validation failure.');
      return;
    }
    if (op === 'other') {
      graphError(res, 404, 'UnknownPath', `no route ${req.method} ${path}`);
      return;
    }
    const faultAt = this.faults.findIndex((f) => f.op === op && f.left > 0);
    if (faultAt >= 0) {
      const f = this.faults[faultAt]!;
      f.left -= 1;
      if (f.left === 0) this.faults.splice(faultAt, 1);
      const headers: Record<string, string> =
        f.fault.retryAfter === undefined ? {} : { 'retry-after': f.fault.retryAfter };
      if (f.fault.graphBody === false) json(res, f.fault.status, undefined, headers);
      else
        graphError(
          res,
          f.fault.status,
          f.fault.status === 429 ? 'TooManyRequests' : 'ServiceUnavailable',
          'fault',
          headers,
        );
      return;
    }
    switch (op) {
      case 'presences':
        return this.getPresences(body, res);
      case 'create':
        return this.create(body, user, res);
      case 'renew':
        return this.renew(path, body, user, res);
      case 'delete':
        return this.remove(path, user, res);
      case 'reauthorize':
        return this.reauthorize(path, user, res);
      case 'list':
        return this.list(url, user, res);
    }
  }

  private opOf(method: string, path: string): GraphOp | 'other' {
    if (method === 'POST' && path === '/communications/getPresencesByUserId') return 'presences';
    if (method === 'POST' && path === '/subscriptions') return 'create';
    if (method === 'GET' && path === '/subscriptions') return 'list';
    if (method === 'PATCH' && /^\/subscriptions\/[^/]+$/.test(path)) return 'renew';
    if (method === 'DELETE' && /^\/subscriptions\/[^/]+$/.test(path)) return 'delete';
    if (method === 'POST' && /^\/subscriptions\/[^/]+\/reauthorize$/.test(path)) return 'reauthorize';
    return 'other';
  }

  private token(tenant: string, text: string, res: ServerResponse): void {
    const form = Object.fromEntries(new URLSearchParams(text));
    this.tokenRequests.push(form);
    if (this.tokenFault !== null) {
      json(res, this.tokenFault.status, {
        error: this.tokenFault.error,
        error_description: `AADSTS700082: The token or credential has expired. Trace ID: ${randomUUID()}`,
      });
      return;
    }
    if (tenant !== this.o.tenantId) {
      json(res, 400, { error: 'invalid_request', error_description: 'AADSTS90002: Tenant not found.' });
      return;
    }
    if (form.grant_type !== 'client_credentials') {
      json(res, 400, { error: 'unsupported_grant_type' });
      return;
    }
    if (form.client_id !== this.o.clientId || form.client_secret !== this.o.clientSecret) {
      json(res, 401, {
        error: 'invalid_client',
        error_description: 'AADSTS7000215: Invalid client secret provided.',
      });
      return;
    }
    // The resource's `.default`: public Graph, or this fake as the Graph the client was pointed at
    // (GRAPH_API_URL: the scope follows the Graph base, as for a national cloud).
    if (form.scope !== 'https://graph.microsoft.com/.default' && form.scope !== `${this.url}/.default`) {
      json(res, 400, { error: 'invalid_scope' });
      return;
    }
    const token = `app-${randomBytes(16).toString('hex')}`;
    this.appTokens.add(token);
    const ttl = this.o.tokenTtlSec ?? 3599;
    json(res, 200, { token_type: 'Bearer', expires_in: ttl, ext_expires_in: ttl, access_token: token });
  }

  private getPresences(body: unknown, res: ServerResponse): void {
    const ids = (body as { ids?: unknown } | null)?.ids;
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((i) => typeof i === 'string')) {
      graphError(res, 400, 'BadRequest', 'ids is required');
      return;
    }
    if (ids.length > MAX_IDS) {
      graphError(res, 400, 'BadRequest', `at most ${MAX_IDS} ids`);
      return;
    }
    const value = ids
      .map((id) => this.presences.get(id.toLowerCase()))
      .filter((p): p is GraphPresence => p !== undefined);
    json(res, 200, {
      '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.presence)',
      value,
    });
  }

  private async create(body: unknown, user: string | undefined, res: ServerResponse): Promise<void> {
    if (user === undefined) {
      graphError(
        res,
        403,
        'ExtensionError',
        'Operation: Create; presence subscriptions need a delegated token',
      );
      return;
    }
    const b = (body ?? {}) as Record<string, unknown>;
    const ids = typeof b.resource === 'string' ? idsOfResource(b.resource) : null;
    const expires = typeof b.expirationDateTime === 'string' ? Date.parse(b.expirationDateTime) : NaN;
    const now = this.o.clock.now();
    if (b.changeType !== 'updated' || ids === null || ids.length > MAX_IDS) {
      graphError(
        res,
        400,
        'InvalidRequest',
        'changeType must be updated and resource a presence filter of ≤ 650 ids',
      );
      return;
    }
    if (
      typeof b.notificationUrl !== 'string' ||
      typeof b.clientState !== 'string' ||
      b.clientState.length > 128
    ) {
      graphError(res, 400, 'InvalidRequest', 'notificationUrl and clientState (≤ 128) are required');
      return;
    }
    if (!(expires > now && expires <= now + MAX_SUB_MS)) {
      graphError(res, 400, 'InvalidRequest', 'expirationDateTime must be within 60 minutes');
      return;
    }
    for (const s of this.subscriptions.values()) {
      if (s.owner === user && s.expiresAt > now) {
        graphError(
          res,
          409,
          'Conflict',
          'this user already has a presence subscription for this application',
        );
        return;
      }
    }
    const lifecycleUrl = typeof b.lifecycleNotificationUrl === 'string' ? b.lifecycleNotificationUrl : null;
    for (const target of [b.notificationUrl, lifecycleUrl]) {
      if (target === null) continue;
      // Graph reports an unreachable URL and a wrong answer alike: validation failed.
      const h = await this.handshake(target).catch(() => null);
      if (h === null || !h.ok) {
        graphError(res, 400, 'ValidationError', `Subscription validation request failed for ${target}`);
        return;
      }
    }
    const sub: FakeSubscription = {
      id: randomUUID(),
      resource: b.resource as string,
      ids,
      notificationUrl: b.notificationUrl,
      lifecycleNotificationUrl: lifecycleUrl,
      clientState: b.clientState,
      expiresAt: expires,
      owner: user,
      reauthorized: 0,
    };
    this.subscriptions.set(sub.id, sub);
    json(res, 201, this.view(sub));
  }

  private live(path: string, user: string | undefined, res: ServerResponse): FakeSubscription | null {
    const id = decodeURIComponent(path.split('/')[2] ?? '');
    const sub = this.subscriptions.get(id);
    if (sub === undefined || sub.expiresAt <= this.o.clock.now()) {
      graphError(res, 404, 'ResourceNotFound', 'subscription not found');
      return null;
    }
    if (user !== sub.owner) {
      graphError(res, 403, 'Forbidden', 'only the user who created it may change it');
      return null;
    }
    return sub;
  }

  private renew(path: string, body: unknown, user: string | undefined, res: ServerResponse): void {
    const sub = this.live(path, user, res);
    if (sub === null) return;
    const raw = (body as { expirationDateTime?: unknown } | null)?.expirationDateTime;
    const expires = typeof raw === 'string' ? Date.parse(raw) : NaN;
    const now = this.o.clock.now();
    if (!(expires > now && expires <= now + MAX_SUB_MS)) {
      graphError(res, 400, 'InvalidRequest', 'expirationDateTime must be within 60 minutes');
      return;
    }
    sub.expiresAt = expires;
    json(res, 200, this.view(sub));
  }

  private remove(path: string, user: string | undefined, res: ServerResponse): void {
    const sub = this.live(path, user, res);
    if (sub === null) return;
    this.subscriptions.delete(sub.id);
    json(res, 204, undefined);
  }

  private reauthorize(path: string, user: string | undefined, res: ServerResponse): void {
    const sub = this.live(path, user, res);
    if (sub === null) return;
    sub.reauthorized += 1;
    json(res, 204, undefined);
  }

  private list(url: URL, user: string | undefined, res: ServerResponse): void {
    if (user === undefined) {
      graphError(res, 403, 'ExtensionError', 'presence subscriptions support no application permission');
      return;
    }
    const skip = url.searchParams.get('$skiptoken');
    let ids: string[];
    if (skip !== null) {
      const rest = this.listings.get(skip);
      if (rest === undefined || rest.user !== user) {
        graphError(res, 400, 'InvalidRequest', 'the $skiptoken is not valid');
        return;
      }
      this.listings.delete(skip);
      ids = rest.ids;
    } else {
      const now = this.o.clock.now();
      ids = [...this.subscriptions.values()]
        .filter((s) => s.owner === user && s.expiresAt > now)
        .map((s) => s.id);
    }
    const page = ids.slice(0, this.listPageSize);
    const body: Record<string, unknown> = {
      '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#subscriptions',
      value: page
        .map((id) => this.subscriptions.get(id))
        .filter((s): s is FakeSubscription => s !== undefined)
        // "the clientState property value is not returned for security purposes"
        .map((s) => ({ ...this.view(s), '@odata.context': undefined, clientState: null })),
    };
    if (ids.length > page.length) {
      const token = randomBytes(9).toString('base64url');
      this.listings.set(token, { user, ids: ids.slice(page.length) });
      body['@odata.nextLink'] = `${this.url}/v1.0/subscriptions?$skiptoken=${token}`;
    }
    json(res, 200, body);
  }

  private view(sub: FakeSubscription): Record<string, unknown> {
    return {
      '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity',
      id: sub.id,
      resource: sub.resource,
      changeType: 'updated',
      clientState: sub.clientState,
      notificationUrl: sub.notificationUrl,
      lifecycleNotificationUrl: sub.lifecycleNotificationUrl,
      // Graph writes 7 fractional digits and a Z.
      expirationDateTime: new Date(sub.expiresAt)
        .toISOString()
        .replace(/\.(\d{3})Z$/, (_m, ms: string) => `.${ms}0000Z`),
      applicationId: 'fake-app',
      creatorId: sub.owner,
      latestSupportedTlsVersion: 'v1_2',
    };
  }
}

/** A deterministic AAD object id for test user n. */
export function aadId(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

export async function startFakeGraph(options: FakeGraphOptions): Promise<FakeGraph> {
  return new FakeGraph(options).start();
}

/**
 * The app token as `serve` gives it to the Teams connector: the tenant's client-credentials grant
 * from the OAuth layer's token source (src/oauth/app-token.ts), against the fake's token endpoint.
 */
export function fakeGraphAppToken(
  graph: { readonly url: string },
  o: { tenantId: string; clientId: string; clientSecret: string; clock: Clock },
): AppToken {
  const env = parseEnv({
    MS_TENANT_ID: o.tenantId,
    MS_CLIENT_ID: o.clientId,
    MS_CLIENT_SECRET: o.clientSecret,
    MS_LOGIN_URL: graph.url,
  });
  const grant = new AppGrants(env, { clock: o.clock }).for('teams');
  if (grant === null) throw new Error('the Microsoft client credentials are incomplete');
  return grant.token;
}
