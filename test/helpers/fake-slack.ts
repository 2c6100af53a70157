/**
 * @module test/helpers/fake-slack
 * A local fake of the Slack Web API on 127.0.0.1, speaking the documented protocol so that the
 * real `@slack/web-api` WebClient runs against it: `POST /api/<method>` with a form-encoded body
 * and `Authorization: Bearer <token>`; HTTP 200 with `{ ok: true, … }` or `{ ok: false, error }`;
 * 429 with `Retry-After` when rate limited. Methods: `users.getPresence` (for another user only
 * `presence`, https://docs.slack.dev/reference/methods/users.getPresence/), `dnd.teamInfo` (up
 * to 50 users, …/dnd.teamInfo/), `users.profile.get` (…/users.profile.get/).
 *
 * Tests set each user's state, queue failures per method (`fail`), revoke tokens, and read
 * every call with the time it arrived on the test's clock (`calls`, `count`).
 *
 * `slackHarness` runs the whole service (`createService`) with a real SlackConnector pointed at
 * the fake and the inbound route mounted through `plugins`, on a FakeClock with timers off.
 */

import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import type { LightMyRequestResponse } from 'fastify';

import { SlackConnector, type SlackConnectorOptions } from '../../connectors/slack/connector';
import { slackInboundRoutes } from '../../src/http/routes/inbound';
import type { SlackEventCallback } from '../../connectors/slack/types';
import type { PresenceChange } from '../../src/core/changes';
import { parseEnv } from '../../src/config/env';
import { FakeClock, type Clock } from '../../src/core/clock';
import { createService, type Service } from '../../src/main';
import { tmpDir } from './engine';

export type FakeSlackMethod = 'users.getPresence' | 'dnd.teamInfo' | 'users.profile.get';

export interface FakeSlackUser {
  /** 'active' or 'away'; anything else tests an unknown value. */
  presence: string;
  dnd: { dnd_enabled: boolean; next_dnd_start_ts: number; next_dnd_end_ts: number };
  profile: { status_text: string; status_emoji: string; status_expiration: number };
}

export type FakeSlackFailure =
  | { readonly kind: 'rate_limited'; readonly retryAfterSec: number }
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'error'; readonly error: string };

export interface FakeSlackCall {
  readonly method: string;
  readonly at: number;
  readonly token: string | null;
  readonly contentType: string;
  readonly params: Record<string, string>;
  /** What the fake answered: 'ok', the error code of a 200 `ok: false`, or an HTTP status. */
  readonly outcome: string | number;
}

export class FakeSlack {
  readonly calls: FakeSlackCall[] = [];
  readonly users = new Map<string, FakeSlackUser>();
  /** token → workspace it belongs to. */
  readonly tokens = new Map<string, string>();
  /** token → the error Slack now answers for it (token_revoked, invalid_auth, account_inactive). */
  readonly refused = new Map<string, string>();
  private readonly failures = new Map<string, FakeSlackFailure[]>();
  private server: Server | null = null;
  private port = 0;

  constructor(private readonly clock: Clock) {}

  static async start(
    clock: Clock,
    tokens: Record<string, string> = { 'xoxb-test-token': 'T0TEST' },
  ): Promise<FakeSlack> {
    const fake = new FakeSlack(clock);
    for (const [token, team] of Object.entries(tokens)) fake.tokens.set(token, team);
    await fake.listen();
    return fake;
  }

  /** The base URL to give the WebClient (`slackApiUrl`). */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api/`;
  }

  user(id: string, patch: Partial<FakeSlackUser> = {}): FakeSlackUser {
    const u = this.users.get(id) ?? {
      presence: 'active',
      dnd: { dnd_enabled: false, next_dnd_start_ts: 1, next_dnd_end_ts: 1 },
      profile: { status_text: '', status_emoji: '', status_expiration: 0 },
    };
    Object.assign(u, patch);
    this.users.set(id, u);
    return u;
  }

  /** The next `times` calls of `method` fail this way. */
  fail(method: FakeSlackMethod, failure: FakeSlackFailure, times = 1): void {
    const list = this.failures.get(method) ?? [];
    for (let i = 0; i < times; i++) list.push(failure);
    this.failures.set(method, list);
  }

  callsOf(method: FakeSlackMethod): FakeSlackCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  count(method: FakeSlackMethod): number {
    return this.callsOf(method).length;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s === null) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async listen(): Promise<void> {
    const server = createServer((req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = url.pathname.replace(/^\/api\//, '');
    const contentType = req.headers['content-type'] ?? '';
    const params = Object.fromEntries(new URLSearchParams(body));
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : null;
    const record = (outcome: FakeSlackCall['outcome']): void => {
      this.calls.push({ method, at: this.clock.now(), token, contentType, params, outcome });
    };
    const json = (status: number, value: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify(value));
    };
    const error = (code: string): void => {
      record(code);
      json(200, { ok: false, error: code });
    };

    if (req.method !== 'POST' || !url.pathname.startsWith('/api/')) {
      record(404);
      res.writeHead(404).end();
      return;
    }
    const failure = this.failures.get(method)?.shift();
    if (failure !== undefined) {
      if (failure.kind === 'rate_limited') {
        record(429);
        json(429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(failure.retryAfterSec) });
      } else if (failure.kind === 'status') {
        record(failure.status);
        res.writeHead(failure.status, { 'content-type': 'text/html' }).end('<html>upstream trouble</html>');
      } else {
        error(failure.error);
      }
      return;
    }
    if (token === null) return error('not_authed');
    const refused = this.refused.get(token);
    if (refused !== undefined) return error(refused);
    if (!this.tokens.has(token)) return error('invalid_auth');
    if (!contentType.startsWith('application/x-www-form-urlencoded')) return error('invalid_form_data');

    switch (method) {
      case 'users.getPresence': {
        const u = params.user === undefined ? undefined : this.users.get(params.user);
        if (u === undefined) return error('user_not_found');
        record('ok');
        // For another user Slack says only active or away.
        return json(200, { ok: true, presence: u.presence });
      }
      case 'dnd.teamInfo': {
        const ids = (params.users ?? '').split(',').filter((s) => s !== '');
        if (ids.length === 0 || ids.length > 50) return error('invalid_arguments');
        const users: Record<string, FakeSlackUser['dnd']> = {};
        for (const id of ids) {
          const u = this.users.get(id);
          if (u !== undefined) users[id] = { ...u.dnd };
        }
        record('ok');
        return json(200, { ok: true, users });
      }
      case 'users.profile.get': {
        const u = params.user === undefined ? undefined : this.users.get(params.user);
        if (u === undefined) return error('user_not_found');
        record('ok');
        return json(200, { ok: true, profile: { real_name: params.user, ...u.profile } });
      }
      default:
        return error('unknown_method');
    }
  }
}

export const SIGNING_SECRET = 'test-signing-secret-0123456789abcdef';
export const TOKEN = 'xoxb-test-token';
export const TEAM = 'T0TEST';

/** Slack's v0 signature over a body, as Slack would send it. */
export function slackSign(secret: string, timestampSec: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestampSec}:${body}`).digest('hex')}`;
}

export interface SlackHarness {
  readonly svc: Service;
  readonly clock: FakeClock;
  readonly fake: FakeSlack;
  readonly connector: SlackConnector;
  readonly key: string;
  /** Every presence change the engine committed (the webhook outbox will take these). */
  readonly changes: PresenceChange[];
  /** Event handlers started by the inbound route; `settle()` waits for them. */
  settle(): Promise<void>;
  /** Creates the user and links a Slack account over the API. */
  link(userId: string, externalId: string, workspaceId?: string): Promise<void>;
  /** GET /v1/presence/{id}, parsed. */
  presence(userId: string): Promise<any>;
  /** POST /v1/inbound/slack, signed with the harness secret unless the headers say otherwise. */
  inbound(
    body: string | object,
    options?: {
      headers?: Record<string, string | undefined>;
      contentType?: string;
      /** Sign these bytes instead of the ones sent (a tampered body). */
      signBody?: string;
    },
  ): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function slackHarness(
  options: Partial<SlackConnectorOptions> = {},
  fakeTokens?: Record<string, string>,
): Promise<SlackHarness> {
  const tmp = tmpDir();
  const clock = new FakeClock();
  const fake = await FakeSlack.start(clock, fakeTokens);
  const connector = new SlackConnector({
    token: TOKEN,
    apiUrl: fake.apiUrl,
    clock,
    timers: false,
    ...options,
  });
  const pending: Promise<void>[] = [];
  const svc = await createService(
    parseEnv({
      PRESENCE_DB: join(tmp.dir, 'slack.db'),
      LOG_LEVEL: 'silent',
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      // Webhook signing secrets are sealed under it (without it webhooks are off).
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
    }),
    {
      clock,
      logger: false,
      timers: false,
      connectors: [{ connector }],
      plugins: [
        (app) =>
          slackInboundRoutes(app, {
            signingSecret: SIGNING_SECRET,
            clock,
            handler: (e: SlackEventCallback) => {
              const p = connector.handleEvent(e);
              pending.push(p);
              return p;
            },
          }),
      ],
    },
  );
  const key = (await svc.keys.create(['read', 'write', 'admin'], 'slack-test')).key;
  const changes: PresenceChange[] = [];
  svc.engine.changes.add({ committed: (c) => changes.push(...c) });
  const auth = { authorization: `Bearer ${key}` };
  const settle = async (): Promise<void> => {
    // The route hands events over on setImmediate, after its answer.
    await new Promise((r) => setImmediate(r));
    while (pending.length > 0) await pending.shift();
  };
  return {
    svc,
    clock,
    fake,
    connector,
    key,
    changes,
    settle,
    async link(userId, externalId, workspaceId = TEAM) {
      const put = await svc.app.inject({
        method: 'PUT',
        url: `/v1/users/${userId}`,
        headers: auth,
        payload: {},
      });
      if (put.statusCode >= 300) throw new Error(`PUT user: ${put.statusCode} ${put.body}`);
      const res = await svc.app.inject({
        method: 'POST',
        url: `/v1/users/${userId}/accounts`,
        headers: auth,
        payload: { platform: 'slack', external_id: externalId, workspace_id: workspaceId },
      });
      if (res.statusCode >= 300) throw new Error(`link: ${res.statusCode} ${res.body}`);
    },
    async presence(userId) {
      const res = await svc.app.inject({ method: 'GET', url: `/v1/presence/${userId}`, headers: auth });
      if (res.statusCode !== 200) throw new Error(`presence: ${res.statusCode} ${res.body}`);
      return JSON.parse(res.body);
    },
    inbound(body, o = {}) {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      const ts = Math.floor(clock.now() / 1000);
      const headers: Record<string, string | undefined> = {
        'content-type': o.contentType ?? 'application/json',
        'x-slack-request-timestamp': String(ts),
        'x-slack-signature': slackSign(SIGNING_SECRET, ts, o.signBody ?? text),
        ...o.headers,
      };
      const sent: Record<string, string> = {};
      for (const [k, v] of Object.entries(headers)) if (v !== undefined) sent[k] = v;
      return svc.app.inject({ method: 'POST', url: '/v1/inbound/slack', headers: sent, payload: text });
    },
    async close() {
      await settle();
      await svc.close();
      await fake.close();
      tmp.cleanup();
    },
  };
}
