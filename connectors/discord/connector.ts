/**
 * @module connectors/discord/connector
 * The Discord connector: a gateway bot. Presences come from the gateway only (there is no REST
 * route for them): the initial state from each guild's GUILD_CREATE, then PRESENCE_UPDATE.
 * Each presence of a linked account (`discord`, user id, workspace '') is mapped with the pure
 * `toDiscordPresence` and reported.
 *
 * While the gateway is connected the cached presences are current, so they are re-reported every
 * `refreshMs` to keep their TTL from lapsing; while it is not, nothing is refreshed and the TTL
 * lets them go stale, which is the truth: we no longer know.
 *
 * Failures, after the close codes (https://discord.com/developers/docs/topics/opcodes-and-status-codes):
 * - 4004 (token rejected), a 401 from the REST API, 4014 (privileged intent not enabled) and the
 *   other codes Discord says not to reconnect after put the connector `down` with a message that
 *   tells the operator what to fix. It does not retry: every retry would spend an IDENTIFY and
 *   fail the same way until someone changes the bot's settings.
 * - Any other drop: discord.js reconnects and resumes the session (no IDENTIFY spent). If it
 *   keeps failing to get back (`maxReconnects` in a row), the client is destroyed and a new one
 *   is made after an exponential backoff, so an outage never becomes a tight reconnect loop.
 * - Every IDENTIFY, by discord.js or by a new client, passes the `IdentifyGate` first.
 *
 * Several nodes (issue #16, `locks` shared): one node at a time holds the gateway of a bot token,
 * the holder of the lease lock `discord-gateway:<token digest>`, renewed every third of its TTL.
 * The others stand by (no connection, no reports: one session sees every presence, and each
 * session spends an IDENTIFY) and try the lock at the same pace, so they take over when the
 * holder's lease ends (it died) or at once when it is released (a clean stop). A holder that
 * finds its lease gone (it stalled past it and another took over) closes its gateway.
 */

import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Clock } from '../../src/core/clock';
import type { Connector, ConnectorContext, ConnectorHealth, MappedPresence } from '../../src/core/connector';
import type { AccountRef, Lease, Locks } from '../../src/core/ports';
import { DEFAULT_DISCORD_API_URL, DiscordGateway, DiscordLoginError } from './client';
import { discord } from './descriptor';
import { IdentifyGate, type IdentifyGateOptions } from './identify-gate';
import { toDiscordPresence } from './map';
import type { DiscordPresence } from './types';

export interface DiscordConnectorOptions {
  /** The bot token (DISCORD_BOT_TOKEN). Never logged. */
  readonly token: string;
  /** The REST API base (DISCORD_API_URL); default https://discord.com/api. */
  readonly apiUrl?: string;
  readonly clock: Clock;
  /** How long one report counts; default the descriptor's 15 minutes. */
  readonly ttlMs?: number;
  /** How often cached presences are re-reported while connected; default a third of the TTL. */
  readonly refreshMs?: number;
  /** Pacing of IDENTIFYs (new sessions). */
  readonly identify?: IdentifyGateOptions;
  /** Reconnect attempts in a row (without getting a session back) before the client is remade; default 5. */
  readonly maxReconnects?: number;
  /** Backoff before a new client after a failed login or too many failed reconnects; default 5 s. */
  readonly backoffMs?: number;
  /** The longest that backoff grows to; default 10 minutes. */
  readonly backoffMaxMs?: number;
  /** discord.js `waitGuildTimeout`: how long to wait for guilds READY announces; default 15 s. */
  readonly waitGuildTimeoutMs?: number;
  /**
   * The locks shared by the nodes (the coordination's): when `shared`, only the holder of the
   * bot's gateway lock connects (see above). Default: this process connects alone.
   */
  readonly locks?: Locks;
  /** The gateway lock's lease (by `clock`); default 30 s. A dead holder's gateway is taken over within it. */
  readonly leaseMs?: number;
  /** How often (real time) the lease is renewed or tried; default a third of `leaseMs`. */
  readonly leaseCheckMs?: number;
}

/** The gateway lock's lease, unless configured. */
export const GATEWAY_LEASE_MS = 30_000;

/** The lock of one bot's gateway: named by a digest of the token, never the token. */
export function gatewayLockKey(token: string): string {
  return `discord-gateway:${createHash('sha256').update(token).digest('hex').slice(0, 32)}`;
}

/** Close codes after which Discord says not to reconnect, with what the operator should do. */
const FATAL_CLOSE: Readonly<Record<number, string>> = {
  4004:
    'Discord closed the gateway with 4004 (authentication failed): the bot token was rejected. ' +
    'Reset the token under Bot in the Discord Developer Portal, set DISCORD_BOT_TOKEN and restart the service',
  4010: 'Discord closed the gateway with 4010 (invalid shard); restart the service',
  4011:
    'Discord closed the gateway with 4011 (sharding required): the bot is in more guilds than one shard ' +
    'may hold (2,500); this connector runs one shard',
  4012: 'Discord closed the gateway with 4012 (invalid API version); upgrade discord.js',
  4013: 'Discord closed the gateway with 4013 (invalid intents); this is a bug in the connector',
  4014:
    'Discord closed the gateway with 4014 (disallowed intents): enable the Server Members and Presence ' +
    'intents under Bot → Privileged Gateway Intents in the Discord Developer Portal (bots in 100 or more ' +
    'servers need Discord to approve them), then restart the service',
};

const TOKEN_REJECTED =
  'Discord rejected the bot token (401 on GET /gateway/bot): check DISCORD_BOT_TOKEN ' +
  '(Developer Portal → Bot → Reset Token) and restart the service';

type Phase =
  | 'idle'
  /** Another node holds the gateway (shared locks): this one waits to take over. */
  | 'standby'
  | 'connecting'
  | 'connected'
  | 'reconnecting'
  | 'backoff'
  | 'fatal'
  | 'stopped';

export class DiscordConnector implements Connector {
  readonly descriptor = discord;
  private readonly token: string;
  private readonly apiUrl: string;
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly refreshMs: number;
  private readonly gate: IdentifyGate;
  private readonly maxReconnects: number;
  private readonly backoffMs: number;
  private readonly backoffMaxMs: number;
  private readonly waitGuildTimeoutMs: number | undefined;
  /** Shared locks (several nodes), else null: this process connects alone. */
  private readonly locks: Locks | null;
  private readonly leaseMs: number;
  private readonly leaseCheckMs: number;
  private readonly lockKey: string;
  /** This node's lease on the gateway (shared locks only). */
  private lease: Lease | null = null;
  private leaseTimer: NodeJS.Timeout | null = null;
  /** The lease step running, so steps never overlap (the timer and a caller). */
  private leaseStep: Promise<void> | null = null;

  private ctx: ConnectorContext | null = null;
  private gateway: DiscordGateway | null = null;
  /** Bumped for every client; handlers of an older client are ignored. */
  private generation = 0;
  private phase: Phase = 'idle';
  private lastSuccessAt: number | null = null;
  private lastError: string | null = null;
  private reconnects = 0;
  /** Clients made in a row without a session that got ready. */
  private failures = 0;
  private refreshTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Aborts IDENTIFY waits on stop. */
  private readonly stopping = new AbortController();
  /** Users the connector has reported, with the last raw status, for the snapshot's offline rule. */
  private readonly reported = new Map<string, string>();
  private readonly unknownValues = new Set<string>();
  /** Stats, for tests and operators. */
  readonly stats = { identifies: 0, clients: 0, reports: 0 };

  constructor(options: DiscordConnectorOptions) {
    this.token = options.token;
    this.apiUrl = options.apiUrl ?? DEFAULT_DISCORD_API_URL;
    this.clock = options.clock;
    this.ttlMs = options.ttlMs ?? discord.defaultTtlMs;
    this.refreshMs = options.refreshMs ?? Math.max(1, Math.floor(this.ttlMs / 3));
    this.gate = new IdentifyGate(options.identify);
    this.maxReconnects = options.maxReconnects ?? 5;
    this.backoffMs = options.backoffMs ?? 5000;
    this.backoffMaxMs = options.backoffMaxMs ?? 10 * 60_000;
    this.waitGuildTimeoutMs = options.waitGuildTimeoutMs;
    this.locks = options.locks?.shared === true ? options.locks : null;
    this.leaseMs = options.leaseMs ?? GATEWAY_LEASE_MS;
    this.leaseCheckMs = options.leaseCheckMs ?? Math.max(1, Math.floor(this.leaseMs / 3));
    this.lockKey = gatewayLockKey(options.token);
  }

  /** Starts connecting in the background: a slow or absent Discord never holds up the service. */
  start(ctx: ConnectorContext): Promise<void> {
    if (this.ctx !== null) return Promise.resolve();
    this.ctx = ctx;
    this.refreshTimer = setInterval(() => this.background(this.refresh()), this.refreshMs);
    this.refreshTimer.unref();
    if (this.locks === null) {
      this.background(this.connect());
    } else {
      this.phase = 'standby';
      this.leaseTimer = setInterval(() => this.background(this.checkLease()), this.leaseCheckMs);
      this.leaseTimer.unref();
      this.background(this.checkLease());
    }
    return Promise.resolve();
  }

  /** Whether this node holds the gateway: always alone; with shared locks, while it holds the lease. */
  get holdsGateway(): boolean {
    return this.locks === null ? this.ctx !== null : this.lease !== null;
  }

  /**
   * With shared locks: renews this node's lease on the gateway, or tries to take it (then
   * connects). The timer runs it every `leaseCheckMs`; tests call it after moving the clock.
   */
  checkLease(): Promise<void> {
    this.leaseStep ??= this.leaseOnce().finally(() => {
      this.leaseStep = null;
    });
    return this.leaseStep;
  }

  private async leaseOnce(): Promise<void> {
    const locks = this.locks;
    if (locks === null || this.ctx === null || this.phase === 'stopped') return;
    const held = this.lease;
    try {
      if (held !== null) {
        const renewed = await locks.renew(held, this.leaseMs);
        if (renewed !== null) {
          this.lease = renewed;
          return;
        }
        await this.standDown('another node took over the Discord gateway');
        return;
      }
      const lease = await locks.acquire(this.lockKey, this.leaseMs);
      if (lease === null) return;
      if (this.stopped) {
        await locks.release(lease).catch(() => false);
        return;
      }
      this.lease = lease;
      this.ctx?.log.info({ platform: 'discord' }, 'discord: this node holds the gateway now');
      // Not awaited: a login takes its time, and a stop must not wait for it to end the step.
      this.background(this.connect());
    } catch (error) {
      // The coordination cannot be reached: the gateway stays while the lease lasts by our
      // clock; after its end another node may hold it, so this one lets go.
      if (held !== null && this.clock.now() >= held.expiresAt)
        await this.standDown('the Discord gateway lease ended unrenewed');
      this.ctx?.log.warn(
        { platform: 'discord', err: error instanceof Error ? error.message : String(error) },
        'discord: the gateway lease could not be renewed or taken',
      );
    }
  }

  /** Read through a getter: the phase changes across awaits (a stop). */
  private get stopped(): boolean {
    return this.phase === 'stopped';
  }

  /** Closes this node's gateway: another holds (or may hold) the lease now. */
  private async standDown(why: string): Promise<void> {
    this.lease = null;
    if (this.phase === 'stopped') return;
    this.ctx?.log.warn({ platform: 'discord' }, `discord: ${why}; standing by`);
    this.phase = 'standby';
    this.generation += 1;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const gateway = this.gateway;
    this.gateway = null;
    await gateway?.destroy();
  }

  /**
   * Reports the cached presences of every linked account now. The refresh does this anyway
   * within `refreshMs`; call it after linking a Discord account so the new link shows at once.
   */
  async resync(): Promise<void> {
    if (this.phase === 'connected') await this.reportAll(false);
  }

  async stop(): Promise<void> {
    this.phase = 'stopped';
    this.generation += 1;
    if (this.refreshTimer !== null) clearInterval(this.refreshTimer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.leaseTimer !== null) clearInterval(this.leaseTimer);
    this.refreshTimer = null;
    this.retryTimer = null;
    this.leaseTimer = null;
    const gateway = this.gateway;
    this.gateway = null;
    // Destroying the client closes its socket, which already cancels an IDENTIFY wait; the
    // abort after it only catches a wait the library left behind.
    await gateway?.destroy();
    this.stopping.abort();
    // A lease step in flight may be taking the lock: wait for it (it releases what it took once
    // it sees the stop), then release ours at once, after the socket is closed (never two
    // gateways), so another node takes over without waiting for the lease to end.
    await this.leaseStep?.catch(() => undefined);
    const lease = this.lease;
    this.lease = null;
    if (lease !== null && this.locks !== null) await this.locks.release(lease).catch(() => false);
    this.ctx = null;
  }

  health(): ConnectorHealth {
    const state =
      this.phase === 'idle' || this.phase === 'stopped'
        ? 'off'
        : this.phase === 'connected' || this.phase === 'standby'
          ? 'ok'
          : this.phase === 'fatal'
            ? 'down'
            : 'degraded';
    return { state, lastSuccessAt: this.lastSuccessAt, lastError: this.lastError, nextPollAt: null };
  }

  // ---------------------------------------------------------------- the client's life

  private async connect(): Promise<void> {
    if (this.phase === 'stopped' || this.phase === 'fatal') return;
    // A retry that outlived this node's lease: the gateway is another node's now.
    if (this.locks !== null && this.lease === null) return;
    this.retryTimer = null;
    this.phase = 'connecting';
    this.reconnects = 0;
    const gen = ++this.generation;
    const current = (): boolean => gen === this.generation;
    this.stats.clients += 1;
    const gateway = new DiscordGateway(
      {
        token: this.token,
        apiUrl: this.apiUrl,
        waitGuildTimeoutMs: this.waitGuildTimeoutMs,
        beforeIdentify: (signal) => this.beforeIdentify(signal),
      },
      {
        onSessionReady: () => current() && this.onSessionReady(),
        onGuildAvailable: () => current() && this.background(this.reportAll(false)),
        onPresence: (userId, p) => current() && this.background(this.onPresence(userId, p)),
        onResumed: () => current() && this.onResumed(),
        onReconnecting: () => current() && this.onReconnecting(),
        onClosed: (code) => current() && this.onClosed(code),
      },
    );
    this.gateway = gateway;
    try {
      await gateway.login();
    } catch (error) {
      if (current()) this.onLoginFailed(error);
    }
  }

  private async beforeIdentify(signal: AbortSignal): Promise<void> {
    const delay = this.gate.reserve(this.clock.now());
    this.stats.identifies += 1;
    if (delay > 0) {
      this.ctx?.log.warn(
        { platform: 'discord', delayMs: delay, identifiesToday: this.gate.countSince(this.clock.now()) },
        'discord: delaying a new gateway session (IDENTIFY backoff)',
      );
      await sleep(delay, undefined, { signal: AbortSignal.any([signal, this.stopping.signal]) });
    }
  }

  private onSessionReady(): void {
    this.phase = 'connected';
    this.reconnects = 0;
    this.failures = 0;
    this.gate.ready(this.clock.now());
    this.success();
    this.ctx?.log.info({ platform: 'discord' }, 'discord: gateway session ready');
    this.background(this.reportAll(true));
  }

  private onResumed(): void {
    this.phase = 'connected';
    this.reconnects = 0;
    this.success();
    this.ctx?.log.info({ platform: 'discord' }, 'discord: gateway session resumed');
  }

  private onReconnecting(): void {
    this.phase = 'reconnecting';
    this.reconnects += 1;
    if (this.reconnects <= this.maxReconnects) return;
    this.lastError = `the gateway connection failed ${this.reconnects} times in a row`;
    this.background(this.recycle());
  }

  private onClosed(code: number): void {
    const message = FATAL_CLOSE[code] ?? `Discord closed the gateway with ${code} and said not to reconnect`;
    this.fatal(message, { code });
  }

  private onLoginFailed(error: unknown): void {
    if (this.phase === 'fatal' || this.phase === 'stopped') return;
    if (error instanceof DiscordLoginError && error.kind === 'token_invalid') {
      this.fatal(TOKEN_REJECTED, {});
      return;
    }
    // DiscordLoginError messages are scrubbed of the token; anything else is not shown.
    const why = error instanceof DiscordLoginError ? error.message : 'unexpected error';
    this.lastError = `could not connect to the Discord gateway: ${why}`;
    this.background(this.recycle());
  }

  private fatal(message: string, fields: object): void {
    this.phase = 'fatal';
    this.lastError = message;
    this.generation += 1;
    this.ctx?.log.error({ platform: 'discord', ...fields }, `discord: ${message}`);
    const gateway = this.gateway;
    this.gateway = null;
    if (gateway !== null) this.background(gateway.destroy());
  }

  /** Destroys the client and makes a new one after a backoff that doubles with each failure. */
  private async recycle(): Promise<void> {
    const gen = ++this.generation;
    this.phase = 'backoff';
    const delay = Math.min(this.backoffMaxMs, this.backoffMs * 2 ** Math.min(this.failures, 30));
    this.failures += 1;
    this.ctx?.log.warn(
      { platform: 'discord', delayMs: delay, error: this.lastError },
      'discord: gateway unavailable, retrying later',
    );
    const gateway = this.gateway;
    this.gateway = null;
    await gateway?.destroy();
    if (gen !== this.generation) return; // stopped (or failed for good) meanwhile
    this.retryTimer = setTimeout(() => this.background(this.connect()), delay);
    this.retryTimer.unref();
  }

  /** Runs work nobody awaits; a failure is logged, never left as an unhandled rejection. */
  private background(work: Promise<void>): void {
    work.catch((error: unknown) => {
      this.ctx?.log.error({ platform: 'discord', err: error }, 'discord: connector task failed');
    });
  }

  // ---------------------------------------------------------------- presences

  private success(): void {
    this.lastSuccessAt = this.clock.now();
  }

  private async onPresence(userId: string, presence: DiscordPresence): Promise<void> {
    this.success();
    await this.report(userId, presence);
  }

  /**
   * Reports every linked account's cached presence. After a new session (`full`), a user
   * reported before but now in no guild's presences went offline while we were away: GUILD_CREATE
   * leaves offline members out.
   */
  private async reportAll(full: boolean): Promise<void> {
    const ctx = this.ctx;
    const gateway = this.gateway;
    if (ctx === null || gateway === null) return;
    const linked = new Set<string>();
    // Discord user ids are global: accounts are linked with workspace ''.
    for (const a of ctx.accounts()) if (a.workspaceId === '') linked.add(a.externalId);
    // All at once: changes then share the engine's group commits instead of one commit each.
    const reports: Promise<void>[] = [];
    for (const userId of linked) {
      const p = gateway.presenceOf(userId);
      if (p !== null) reports.push(this.report(userId, p));
      else if (full && this.reported.has(userId) && this.reported.get(userId) !== 'offline')
        reports.push(this.report(userId, { status: 'offline', client_status: {}, activities: [] }));
    }
    await Promise.all(reports);
  }

  /** Keeps linked users' TTLs from lapsing while the gateway is connected. */
  private async refresh(): Promise<void> {
    if (this.phase !== 'connected') return;
    await this.reportAll(false);
  }

  private async report(userId: string, presence: DiscordPresence): Promise<void> {
    const ctx = this.ctx;
    if (ctx === null) return;
    const mapped = toDiscordPresence(presence, this.clock.now());
    if (mapped === null) {
      // Never guessed into a status (raw kept, nothing invented); logged once.
      if (!this.unknownValues.has(presence.status))
        ctx.log.warn({ platform: 'discord', status: presence.status }, 'discord: unknown status ignored');
      this.unknownValues.add(presence.status);
      return;
    }
    await this.send(ctx, userId, mapped, presence.status);
  }

  private async send(
    ctx: ConnectorContext,
    userId: string,
    mapped: MappedPresence,
    raw: string,
  ): Promise<void> {
    const account: AccountRef = { platform: 'discord', externalId: userId, workspaceId: '' };
    try {
      if (await ctx.report({ account, presence: mapped, ttlMs: this.ttlMs })) {
        this.reported.set(userId, raw);
        this.stats.reports += 1;
      }
    } catch (error) {
      this.lastError = `could not record a presence: ${(error as Error).message}`;
      ctx.log.error({ platform: 'discord', err: error }, 'discord: report failed');
    }
  }
}
