/**
 * @module connectors/discord/client
 * The only file that imports discord.js. `DiscordGateway` runs one discord.js `Client` with the
 * Guilds, GuildMembers and GuildPresences intents and hands the connector plain data: presences
 * as `DiscordPresence` objects keyed by user id, and what happens to the session (ready,
 * resumed, reconnecting, closed for good). discord.js itself heartbeats, resumes after a drop
 * and re-identifies when a session cannot be resumed; every new IDENTIFY first waits for the
 * connector's `beforeIdentify`, which is how the connector paces them (1,000 per day).
 */

import {
  Client,
  DiscordjsErrorCodes,
  Events,
  GatewayDispatchEvents,
  GatewayIntentBits,
  Partials,
  SimpleShardingStrategy,
  type Presence,
} from 'discord.js';

import type { DiscordActivity, DiscordClientStatus, DiscordPresence } from './types';

export const DEFAULT_DISCORD_API_URL = 'https://discord.com/api';

/**
 * Guilds: the guilds and their GUILD_CREATE; GuildMembers and GuildPresences (both privileged):
 * the members and their presences (https://discord.com/developers/docs/events/gateway#gateway-intents).
 */
const INTENTS = [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMembers, GatewayIntentBits.GuildPresences];

/** What the connector hears from the gateway. Handlers run only until `destroy()`. */
export interface DiscordGatewayHandlers {
  /**
   * A session is ready and every guild it announced has arrived (first login, or a new session
   * after one could not be resumed): `presenceOf` now answers from fresh GUILD_CREATE data.
   */
  onSessionReady(): void;
  /** A guild became available after the session was ready (the bot joined it, or an outage ended). */
  onGuildAvailable(guildId: string): void;
  /** A PRESENCE_UPDATE that changed something. */
  onPresence(userId: string, presence: DiscordPresence): void;
  /** A dropped session was resumed; missed events were replayed before this. */
  onResumed(): void;
  /** The connection closed and discord.js is reconnecting (resuming when it can). */
  onReconnecting(): void;
  /** The gateway closed with a code discord.js will not reconnect after (4004, 4010–4014). */
  onClosed(code: number): void;
}

export interface DiscordGatewayOptions {
  readonly token: string;
  /** discord.js `rest.api`; the gateway URL comes from `GET {api}/v10/gateway/bot`. */
  readonly apiUrl: string;
  /** How long to wait for the guilds READY announces (discord.js default 15 s). */
  readonly waitGuildTimeoutMs?: number;
  /** Awaited before every IDENTIFY; rejects (on `signal`) when the attempt is abandoned. */
  readonly beforeIdentify: (signal: AbortSignal) => Promise<void>;
}

/** Why `login()` failed, with a message free of the token. */
export class DiscordLoginError extends Error {
  override name = 'DiscordLoginError';
  constructor(
    /** token_invalid: the REST API answered 401; other: network, 5xx, no sessions left, a closed gateway. */
    readonly kind: 'token_invalid' | 'other',
    message: string,
  ) {
    super(message);
  }
}

/** The plain shape of a discord.js presence, as the gateway sent it. */
function toPlain(p: Presence): DiscordPresence {
  const activities: DiscordActivity[] = p.activities.map((a) => ({
    name: a.name,
    type: a.type,
    state: a.state,
    emoji: a.emoji === null ? null : { name: a.emoji.name, id: a.emoji.id },
  }));
  // discord.js keeps the gateway's `client_status` object as is (it may carry `vr` too).
  const clientStatus = (p.clientStatus ?? {}) as DiscordClientStatus;
  return { status: p.status, client_status: { ...clientStatus }, activities };
}

/** A promise that never settles: where a destroyed client's stray shard is parked. */
const NEVER = new Promise<never>(() => undefined);

export class DiscordGateway {
  private readonly client: Client;
  private destroyed = false;

  constructor(
    private readonly options: DiscordGatewayOptions,
    handlers: DiscordGatewayHandlers,
  ) {
    this.client = new Client({
      intents: INTENTS,
      // A PRESENCE_UPDATE's `user` may hold only the id; without the User partial discord.js
      // drops updates for users it has not cached.
      partials: [Partials.User],
      rest: { api: options.apiUrl },
      ...(options.waitGuildTimeoutMs !== undefined ? { waitGuildTimeout: options.waitGuildTimeoutMs } : {}),
      ws: {
        // discord.js asks this before each IDENTIFY (never before a RESUME).
        buildIdentifyThrottler: () => ({
          waitForIdentify: (_shardId: number, signal: AbortSignal) => options.beforeIdentify(signal),
        }),
        // Works around @discordjs/ws 1.2.3: a shard destroyed during its 500 ms pause before a
        // reconnect reconnects anyway when the pause ends, and keeps doing so forever (its
        // `destroy` is a no-op while idle; the pause is a bare timer). Every reconnect starts by
        // reading the session; once this client is destroyed that read never settles, so such a
        // shard stops there, holding no socket and no timer. Otherwise the default strategy.
        buildStrategy: (manager) => {
          const retrieve = manager.options.retrieveSessionInfo.bind(manager.options);
          manager.options.retrieveSessionInfo = (shardId: number) =>
            this.destroyed ? NEVER : retrieve(shardId);
          return new SimpleShardingStrategy(manager);
        },
      },
    });
    const c = this.client;
    const live = (): boolean => !this.destroyed;
    let sessionReady = false;

    // A GUILD_CREATE lists the guild's presences in full (offline members left out), so what a
    // new session's GUILD_CREATE does not list is offline now. discord.js only adds to its cache,
    // so empty it first; this listener runs before discord.js handles the packet.
    // https://discord.com/developers/docs/events/gateway-events#guild-create
    c.ws.on(GatewayDispatchEvents.GuildCreate, (data: { id?: string }) => {
      if (typeof data.id === 'string') c.guilds.cache.get(data.id)?.presences.cache.clear();
    });
    c.on(Events.ClientReady, () => {
      sessionReady = true;
      if (live()) handlers.onSessionReady();
    });
    // Emitted again when a later session (a fresh IDENTIFY) has received all its guilds.
    c.on(Events.ShardReady, () => {
      if (sessionReady && live()) handlers.onSessionReady();
    });
    const guild = (g: { id: string }): void => {
      if (sessionReady && live()) handlers.onGuildAvailable(g.id);
    };
    c.on(Events.GuildAvailable, guild);
    c.on(Events.GuildCreate, guild);
    // https://discord.com/developers/docs/events/gateway-events#presence-update
    c.on(Events.PresenceUpdate, (_old, p) => {
      if (live()) handlers.onPresence(p.userId, toPlain(p));
    });
    c.on(Events.ShardResume, () => {
      if (live()) handlers.onResumed();
    });
    c.on(Events.ShardReconnecting, () => {
      if (live()) handlers.onReconnecting();
    });
    // https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway-gateway-close-event-codes
    c.on(Events.ShardDisconnect, (event) => {
      if (live()) handlers.onClosed(event.code);
    });
    // Listened to so that an emitted error never becomes an uncaught exception; the close codes
    // and login result carry what the connector needs.
    c.on(Events.ShardError, () => undefined);
    c.on(Events.Error, () => undefined);
  }

  /**
   * Fetches the gateway URL, connects and identifies; resolves when the first session is ready.
   * https://discord.com/developers/docs/events/gateway#get-gateway-bot
   */
  async login(): Promise<void> {
    try {
      await this.client.login(this.options.token);
    } catch (error) {
      throw this.failure(error);
    }
  }

  /** The user's presence in any guild shared with the bot, from the cache; null if none. */
  presenceOf(userId: string): DiscordPresence | null {
    let found: Presence | null = null;
    for (const guild of this.client.guilds.cache.values()) {
      const p = guild.presences.cache.get(userId);
      if (p === undefined) continue;
      found = p;
      if (p.status !== 'offline') break;
    }
    return found === null ? null : toPlain(found);
  }

  /** Closes the connection and every timer of the client; no handler runs afterwards. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.client.destroy();
    this.client.removeAllListeners();
  }

  private failure(error: unknown): DiscordLoginError {
    const code = (error as { code?: unknown } | null)?.code;
    const raw = error instanceof Error ? error.message : String(error);
    // The library does not put the token in messages; this keeps it so if that ever changes.
    const message = raw.split(this.options.token).join('[redacted]');
    return new DiscordLoginError(
      code === DiscordjsErrorCodes.TokenInvalid ? 'token_invalid' : 'other',
      message,
    );
  }
}
