/**
 * @module test/helpers/fake-discord
 * A loopback fake of Discord for the real discord.js client: the REST route the client calls on
 * login (`GET /api/v10/gateway/bot`, which names the gateway) and a WebSocket gateway speaking
 * the documented protocol (https://discord.com/developers/docs/events/gateway): op 10 HELLO,
 * op 2 IDENTIFY (token and intents checked and recorded; a wrong token closes with 4004, a
 * privileged intent the "portal" has not enabled closes with 4014), op 1 heartbeats answered by
 * op 11, dispatches READY (unavailable guilds, `session_id`, `resume_gateway_url` back to this
 * fake), one GUILD_CREATE per guild (members + presences) and PRESENCE_UPDATE. Sessions outlive
 * their socket: after a drop the client may RESUME (op 6) and gets the missed dispatches
 * replayed, then RESUMED. It counts identifies and resumes, so tests can tell a resume from a
 * fresh session and spot a reconnect storm.
 */

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';

import { WebSocketServer, type RawData, type WebSocket } from 'ws';

import { DiscordConnector, type DiscordConnectorOptions } from '../../connectors/discord/connector';
import type { PresenceChange } from '../../src/core/changes';
import { parseEnv } from '../../src/config/env';
import { systemClock, type Clock } from '../../src/core/clock';
import { createService, type Service } from '../../src/main';
import { tmpDir } from './engine';

/** Gateway intent bits (https://discord.com/developers/docs/events/gateway#gateway-intents). */
export const INTENTS = { Guilds: 1 << 0, GuildMembers: 1 << 1, GuildPresences: 1 << 8 } as const;
const PRIVILEGED = INTENTS.GuildMembers | INTENTS.GuildPresences;

export interface FakeUser {
  readonly id: string;
  readonly username: string;
}

/** A presence as the gateway sends it (user partial: only `id` is guaranteed). */
export interface FakePresence {
  readonly userId: string;
  readonly status: string;
  readonly client_status?: Record<string, string>;
  readonly activities?: readonly Record<string, unknown>[];
}

export interface FakeGuild {
  readonly id: string;
  readonly name: string;
  readonly members: readonly FakeUser[];
  /** Presences sent in GUILD_CREATE (Discord leaves out offline members of large guilds). */
  presences: FakePresence[];
}

export interface FakeDiscordOptions {
  /** The one bot token the fake accepts (REST `Authorization: Bot …` and IDENTIFY). */
  readonly token?: string;
  /** Whether the "Developer Portal" has the privileged intents switched on; off → 4014. */
  readonly privilegedIntents?: boolean;
  readonly guilds?: readonly FakeGuild[];
  readonly heartbeatIntervalMs?: number;
  /** Answer every IDENTIFY with op 9 INVALID_SESSION from the start. */
  readonly invalidateIdentify?: boolean;
}

export interface IdentifyRecord {
  readonly token: string;
  readonly intents: number;
  readonly properties: unknown;
}

interface Session {
  readonly id: string;
  seq: number;
  /** Every dispatch of the session, for replay on RESUME. */
  readonly sent: { s: number; t: string; d: unknown }[];
  socket: WebSocket | null;
  invalid: boolean;
}

interface Conn {
  readonly socket: WebSocket;
  session: Session | null;
}

const BOT = { id: '900000000000000001', username: 'presence-bot' };
const JOINED_AT = '2026-01-01T00:00:00.000000+00:00';

function userObject(u: FakeUser): Record<string, unknown> {
  return {
    id: u.id,
    username: u.username,
    discriminator: '0',
    global_name: u.username,
    avatar: null,
  };
}

export class FakeDiscord {
  /** Reassign to "reset the token": later IDENTIFYs, RESUMEs and REST calls with the old one fail. */
  token: string;
  privilegedIntents: boolean;
  readonly guilds: FakeGuild[];
  heartbeatIntervalMs: number;
  /** While true, IDENTIFY is answered with op 9 INVALID_SESSION (d: false). */
  invalidateIdentify = false;
  /** While true, new gateway connections are refused at the HTTP upgrade (an outage). */
  refuseConnections = false;

  readonly identifies: IdentifyRecord[] = [];
  /** performance.now() of each IDENTIFY, to measure the client's pacing. */
  readonly identifyTimes: number[] = [];
  readonly resumes: { sessionId: string; seq: number; ok: boolean }[] = [];
  readonly restCalls: string[] = [];
  readonly closeCodes: number[] = [];
  connectionAttempts = 0;
  heartbeats = 0;

  private readonly server: Server;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly conns = new Set<Conn>();
  private readonly sessions = new Map<string, Session>();
  private readonly sockets = new Set<Duplex>();
  private port = 0;

  constructor(options: FakeDiscordOptions = {}) {
    this.token = options.token ?? 'fake-bot-token.x.y';
    this.privilegedIntents = options.privilegedIntents ?? true;
    this.guilds = (options.guilds ?? []).map((g) => ({ ...g, presences: [...g.presences] }));
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 41_250;
    this.invalidateIdentify = options.invalidateIdentify ?? false;
    this.server = createServer((req, res) => this.rest(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('upgrade', (req, socket, head) => {
      this.connectionAttempts += 1;
      if (this.refuseConnections) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
  }

  static async start(options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
    const fake = new FakeDiscord(options);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  /** What DISCORD_API_URL / discord.js `rest.api` should be. */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Sockets that are open now. */
  get openConnections(): number {
    let n = 0;
    for (const c of this.conns) if (c.socket.readyState === c.socket.OPEN) n += 1;
    return n;
  }

  // ---------------------------------------------------------------- REST

  private rest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0] ?? '';
    this.restCalls.push(`${req.method} ${path}`);
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bot ${this.token}`) {
      // https://discord.com/developers/docs/topics/opcodes-and-status-codes#http
      send(401, { message: '401: Unauthorized', code: 0 });
      return;
    }
    if (req.method === 'GET' && path === '/api/v10/gateway/bot') {
      // https://discord.com/developers/docs/events/gateway#get-gateway-bot
      send(200, {
        url: this.gatewayUrl,
        shards: 1,
        session_start_limit: {
          total: 1000,
          remaining: 1000 - this.identifies.length,
          reset_after: 14_400_000,
          max_concurrency: 1,
        },
      });
      return;
    }
    send(404, { message: '404: Not Found', code: 0 });
  }

  // ---------------------------------------------------------------- gateway

  private accept(socket: WebSocket): void {
    const conn: Conn = { socket, session: null };
    this.conns.add(conn);
    socket.on('message', (data) => this.onMessage(conn, data));
    socket.on('close', (code) => {
      this.closeCodes.push(code);
      this.conns.delete(conn);
      if (conn.session !== null && conn.session.socket === socket) conn.session.socket = null;
    });
    socket.on('error', () => undefined);
    this.send(socket, { op: 10, d: { heartbeat_interval: this.heartbeatIntervalMs }, s: null, t: null });
  }

  private send(socket: WebSocket, payload: unknown): void {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(payload));
  }

  private onMessage(conn: Conn, data: RawData): void {
    let payload: { op?: number; d?: any };
    try {
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.isBuffer(data)
          ? data.toString('utf8')
          : Buffer.from(new Uint8Array(data)).toString('utf8');
      payload = JSON.parse(text) as { op?: number; d?: any };
    } catch {
      conn.socket.close(4002, 'Decode error');
      return;
    }
    switch (payload.op) {
      case 1:
        this.heartbeats += 1;
        this.send(conn.socket, { op: 11, d: null, s: null, t: null });
        return;
      case 2:
        this.identify(conn, payload.d as IdentifyRecord);
        return;
      case 6:
        this.resume(conn, payload.d as { token: string; session_id: string; seq: number });
        return;
      default:
        // Presence updates (op 3), member requests (op 8)… are not needed by these tests.
        return;
    }
  }

  private identify(conn: Conn, d: IdentifyRecord): void {
    this.identifies.push({ token: d.token, intents: d.intents, properties: d.properties });
    this.identifyTimes.push(performance.now());
    if (conn.session !== null) {
      conn.socket.close(4005, 'Already authenticated');
      return;
    }
    if (d.token !== this.token) {
      conn.socket.close(4004, 'Authentication failed.');
      return;
    }
    if (!this.privilegedIntents && (d.intents & PRIVILEGED) !== 0) {
      conn.socket.close(4014, 'Disallowed intent(s).');
      return;
    }
    if (this.invalidateIdentify) {
      this.send(conn.socket, { op: 9, d: false, s: null, t: null });
      return;
    }
    const session: Session = {
      id: randomBytes(8).toString('hex'),
      seq: 0,
      sent: [],
      socket: conn.socket,
      invalid: false,
    };
    this.sessions.set(session.id, session);
    conn.session = session;
    this.dispatch(session, 'READY', {
      v: 10,
      user: { ...userObject(BOT), bot: true },
      guilds: this.guilds.map((g) => ({ id: g.id, unavailable: true })),
      session_id: session.id,
      resume_gateway_url: `${this.gatewayUrl}/resume`,
      shard: [0, 1],
      application: { id: BOT.id, flags: 0 },
    });
    // Sent at once: discord.js waits `waitGuildTimeout` (15 s) for guilds announced in READY.
    for (const g of this.guilds) this.dispatch(session, 'GUILD_CREATE', this.guildCreate(g));
  }

  private resume(conn: Conn, d: { token: string; session_id: string; seq: number }): void {
    const session = this.sessions.get(d.session_id);
    const ok = session !== undefined && !session.invalid && d.token === this.token && d.seq <= session.seq;
    this.resumes.push({ sessionId: d.session_id, seq: d.seq, ok });
    if (!ok || session === undefined) {
      this.send(conn.socket, { op: 9, d: false, s: null, t: null });
      return;
    }
    session.socket?.terminate();
    session.socket = conn.socket;
    conn.session = session;
    for (const p of session.sent) if (p.s > d.seq) this.send(conn.socket, { op: 0, ...p });
    this.dispatch(session, 'RESUMED', {});
  }

  private dispatch(session: Session, t: string, d: unknown): void {
    session.seq += 1;
    const p = { s: session.seq, t, d };
    session.sent.push(p);
    if (session.socket !== null) this.send(session.socket, { op: 0, ...p });
  }

  private guildCreate(g: FakeGuild): Record<string, unknown> {
    return {
      id: g.id,
      name: g.name,
      icon: null,
      owner_id: BOT.id,
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: [],
      emojis: [],
      stickers: [],
      features: [],
      mfa_level: 0,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: 0,
      preferred_locale: 'en-US',
      public_updates_channel_id: null,
      nsfw_level: 0,
      premium_progress_bar_enabled: false,
      joined_at: JOINED_AT,
      large: false,
      unavailable: false,
      member_count: g.members.length + 1,
      voice_states: [],
      members: [BOT, ...g.members].map((u) => ({
        user: userObject(u),
        roles: [],
        joined_at: JOINED_AT,
        deaf: false,
        mute: false,
        flags: 0,
      })),
      channels: [],
      threads: [],
      presences: g.presences.map((p) => this.presencePayload(g.id, p)),
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }

  private presencePayload(guildId: string, p: FakePresence): Record<string, unknown> {
    return {
      user: { id: p.userId },
      guild_id: guildId,
      status: p.status,
      activities: p.activities ?? [],
      client_status: p.client_status ?? {},
    };
  }

  // ---------------------------------------------------------------- test controls

  /**
   * A PRESENCE_UPDATE to every session (also to a session whose socket dropped: it is replayed
   * on RESUME, as Discord does). It also becomes the guild's state for later GUILD_CREATEs.
   */
  presenceUpdate(guildId: string, p: FakePresence): void {
    const g = this.guilds.find((x) => x.id === guildId);
    if (g !== undefined) g.presences = [...g.presences.filter((x) => x.userId !== p.userId), p];
    for (const s of this.sessions.values())
      if (!s.invalid) this.dispatch(s, 'PRESENCE_UPDATE', this.presencePayload(guildId, p));
  }

  /** Drops every connection without a close frame (the client sees 1006); sessions survive. */
  drop(): void {
    for (const c of this.conns) c.socket.terminate();
  }

  /** Closes every connection with a gateway close code; `invalidate` also ends their sessions. */
  closeAll(code: number, reason = '', invalidate = false): void {
    for (const c of this.conns) {
      if (invalidate && c.session !== null) c.session.invalid = true;
      c.socket.close(code, reason);
    }
  }

  /** Resolves once `predicate` holds, polling every 10 ms; rejects after `timeoutMs`. */
  async waitFor(predicate: () => boolean, timeoutMs = 60_000, what = 'condition'): Promise<void> {
    await waitFor(predicate, timeoutMs, what);
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.socket.terminate();
    this.wss.close();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Polls for a condition; `timeoutMs` only bounds a wait that is stuck, so it is generous. */
export async function waitFor(
  predicate: () => boolean,
  timeoutMs = 60_000,
  what = 'condition',
): Promise<void> {
  const started = performance.now();
  while (!predicate()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ---------------------------------------------------------------- a running service on the fake

export const GUILD = '200000000000000001';
export const ALICE = '100000000000000011';
export const BOB = '100000000000000012';
/** A member nobody linked. */
export const CAROL = '100000000000000013';

/** One guild: alice dnd on desktop with a custom status, bob online on mobile and web, carol online. */
export function teamGuild(): FakeGuild {
  return {
    id: GUILD,
    name: 'Team',
    members: [
      { id: ALICE, username: 'alice' },
      { id: BOB, username: 'bob' },
      { id: CAROL, username: 'carol' },
    ],
    presences: [
      {
        userId: ALICE,
        status: 'dnd',
        client_status: { desktop: 'dnd' },
        activities: [
          { type: 0, name: 'Factorio', created_at: 1 },
          { type: 4, name: 'Custom Status', state: 'deep work', emoji: { name: '🎧' }, created_at: 1 },
        ],
      },
      { userId: BOB, status: 'online', client_status: { mobile: 'online', web: 'idle' } },
      { userId: CAROL, status: 'online', client_status: { desktop: 'online' } },
    ],
  };
}

export interface DiscordRig {
  fake: FakeDiscord;
  connector: DiscordConnector;
  svc: Service;
  changes: PresenceChange[];
  /** GET /v1/presence/{userId} with a read key. */
  presence(userId: string): Promise<any>;
  /** The discord entry of GET /v1/connectors. */
  connectorStatus(): Promise<any>;
  close(): Promise<void>;
}

/**
 * The fake, a DiscordConnector pointed at it and a service running it on a fresh SQLite file, with
 * alice and bob linked (before the connector starts, as after a restart); changes are collected
 * from `engine.changes`.
 */
export async function discordRig(
  options: {
    fake?: FakeDiscordOptions;
    connector?: Partial<DiscordConnectorOptions>;
    token?: string;
    /** The service's and the connector's clock (the system clock unless told); discord.js keeps real time. */
    clock?: Clock;
  } = {},
): Promise<DiscordRig> {
  const fake = await FakeDiscord.start({ guilds: [teamGuild()], ...options.fake });
  const tmp = tmpDir();
  const env = parseEnv({
    PRESENCE_DB: join(tmp.dir, 'discord.db'),
    LOG_LEVEL: 'silent',
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    // Webhook signing secrets are sealed under it (without it webhooks are off).
    PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
  });
  // Accounts are linked before the connector runs, as after a restart of a running service.
  const seed = await createService(env, { logger: false, timers: false });
  for (const [userId, externalId] of [
    ['alice', ALICE],
    ['bob', BOB],
  ] as const) {
    await seed.engine.putUser(userId, {});
    await seed.engine.linkAccount(userId, { platform: 'discord', externalId, workspaceId: '' });
  }
  await seed.close();

  const connector = new DiscordConnector({
    token: options.token ?? fake.token,
    apiUrl: fake.apiUrl,
    clock: options.clock ?? systemClock,
    ...options.connector,
  });
  const svc = await createService(env, {
    connectors: [{ connector }],
    logger: false,
    timers: false,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  const key = (await svc.keys.create(['read'], 'test')).key;
  const changes: PresenceChange[] = [];
  svc.engine.changes.add({ committed: (cs) => changes.push(...cs) });
  const get = async (url: string) => {
    const res = await svc.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });
    expect(res.statusCode).toBe(200);
    return JSON.parse(res.body);
  };
  return {
    fake,
    connector,
    svc,
    changes,
    presence: (userId) => get(`/v1/presence/${userId}`),
    connectorStatus: async () =>
      (await get('/v1/connectors')).connectors.find((c: any) => c.platform === 'discord'),
    close: async () => {
      await svc.close();
      await fake.stop();
      tmp.cleanup();
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
