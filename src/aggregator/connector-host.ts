/**
 * @module aggregator/connector-host
 * Runs connectors against the engine: gives each its context (clock, log, a `report` that
 * resolves accounts to users, and `polls`, whether this node holds an account's polling share)
 * and collects their health for `GET /v1/connectors`. It keeps the polling connectors' shares:
 * taken before a connector starts, renewed every third of their TTL, released at the stop.
 */

import type { Connector, ConnectorContext, ConnectorDescriptor, ConnectorHealth } from '../core/connector';
import { accountTarget, soleNodeShares } from '../core/coordination';
import type { Log } from '../core/log';
import type { PollShares } from '../core/ports';
import { StoreUnavailableError } from '../store/faults';
import type { PresenceEngine } from './engine';

/**
 * What a platform is for: `presence` reports states; `identity` (LinkedIn) only establishes who
 * a person is when they connect, and never sets a status.
 */
export type ConnectorRole = 'presence' | 'identity';

export interface ConnectorStatus {
  readonly descriptor: ConnectorDescriptor;
  readonly enabled: boolean;
  readonly simulated: boolean;
  readonly role: ConnectorRole;
  readonly health: ConnectorHealth;
}

export function roleOf(descriptor: ConnectorDescriptor): ConnectorRole {
  return descriptor.capabilities.presence === 'none' ? 'identity' : 'presence';
}

/**
 * `ok` is earned: a connector that has not succeeded once yet (no poll answered, no push
 * received, the gateway not ready) is `pending`, whatever it says of itself.
 */
export function earnedHealth(h: ConnectorHealth): ConnectorHealth {
  return h.state === 'ok' && h.lastSuccessAt === null ? { ...h, state: 'pending' } : h;
}

/**
 * What the platform inbound routes answered, per platform, for a platform that runs on pushes
 * alone (WhatsApp; Zoom or Slack with only their webhook secret): the route is its connector, so
 * its health comes from here. A verified push (2xx) is a success; a 5xx answer is a failure; a
 * refused signature is noted as the last error (a wrong secret shows), without changing health,
 * since anyone can send one.
 */
export class InboundRecord {
  private readonly seen = new Map<
    string,
    { lastSuccessAt: number | null; lastError: string | null; failing: boolean }
  >();

  record(platform: string, status: number, at: number): void {
    const s = this.seen.get(platform) ?? { lastSuccessAt: null, lastError: null, failing: false };
    if (status >= 200 && status < 300) {
      s.lastSuccessAt = at;
      s.failing = false;
    } else if (status >= 500) {
      s.failing = true;
      s.lastError = `a push was answered ${status} at ${new Date(at).toISOString()}`;
    } else if (status === 401 || status === 403) {
      s.lastError = `a push was refused (${status}: its signature did not verify) at ${new Date(at).toISOString()}`;
    } else return;
    this.seen.set(platform, s);
  }

  health(platform: string): ConnectorHealth {
    const s = this.seen.get(platform);
    const lastSuccessAt = s?.lastSuccessAt ?? null;
    return {
      state: s?.failing === true ? 'degraded' : lastSuccessAt === null ? 'pending' : 'ok',
      lastSuccessAt,
      lastError: s?.lastError ?? null,
      nextPollAt: null,
    };
  }
}

export function connectorContext(
  engine: PresenceEngine,
  descriptor: ConnectorDescriptor,
  log: Log,
  shares: PollShares = soleNodeShares,
): ConnectorContext {
  return {
    clock: engine.clock,
    log,
    async report(r) {
      const ack = engine.reportAccount(r.account, r.presence, r.ttlMs ?? descriptor.defaultTtlMs);
      if (ack === false) return false;
      try {
        await ack;
      } catch (error) {
        // The store refused the commit (an API client would get 503; the engine logged the
        // fault). Every connector reports each user again at its next poll or refresh, which
        // commits once the store recovers; a rejection here would only end a connector's loop.
        if (!(error instanceof StoreUnavailableError)) throw error;
        log.debug({ platform: descriptor.platform, reason: error.fault.reason }, 'report not stored');
      }
      return true;
    },
    accounts: () => engine.accountsFor(descriptor.platform),
    polls: (account) => shares.owns(descriptor.platform, accountTarget(account)),
  };
}

/** What the host says when a connector's health crosses between ok and not ok. */
export type ConnectorEvent = 'connector.degraded' | 'connector.recovered';

export class ConnectorHost {
  private readonly running: { connector: Connector; simulated: boolean; healthy: boolean }[] = [];
  private watcher: NodeJS.Timeout | null = null;
  /** The health events being written, in order (`checkHealth`). */
  private events: Promise<unknown> = Promise.resolve();
  /** The polling connectors' contexts, by platform: whose shares to renew. */
  private readonly polling = new Map<string, ConnectorContext>();
  private renewer: NodeJS.Timeout | null = null;

  constructor(
    private readonly engine: PresenceEngine,
    private readonly log: Log,
    /** Told of each transition (the composition root sends it as a webhook). */
    private readonly onEvent: (type: ConnectorEvent, data: Record<string, unknown>) => unknown = () =>
      undefined,
    /** The polling shares of the nodes; default: this node alone polls everything. */
    private readonly shares: PollShares = soleNodeShares,
  ) {}

  async start(connector: Connector, options: { simulated?: boolean } = {}): Promise<void> {
    const d = connector.descriptor;
    const ctx = connectorContext(this.engine, d, this.log, this.shares);
    if (d.mode === 'poll') {
      // Its shares first, so that its first round polls this node's part, not nothing.
      this.polling.set(d.platform, ctx);
      await this.renewShares(d.platform, ctx);
      this.armRenewals();
    }
    await connector.start(ctx);
    this.running.push({ connector, simulated: options.simulated ?? false, healthy: true });
  }

  /** Renews every polling connector's shares now (the timer does it every third of their TTL). */
  async renewAllShares(): Promise<void> {
    for (const [platform, ctx] of this.polling) await this.renewShares(platform, ctx);
  }

  /**
   * Renews these platforms' shares now, not at the next timer: their accounts changed (several
   * nodes: a link or unlink on any node), so a new account is taken by one node within a round
   * trip and an unlinked one is freed.
   */
  async renewSharesOf(platforms: Iterable<string>): Promise<void> {
    for (const platform of platforms) {
      const ctx = this.polling.get(platform);
      if (ctx !== undefined) await this.renewShares(platform, ctx);
    }
  }

  private async renewShares(platform: string, ctx: ConnectorContext): Promise<void> {
    try {
      await this.shares.renew(platform, ctx.accounts().map(accountTarget));
    } catch (error) {
      // The shares held lapse at their lease's end (the connector then polls nothing here, as
      // another node may take them); the next renewal takes them again once it can.
      this.log.warn({ platform, err: error }, 'polling shares not renewed');
    }
  }

  private armRenewals(): void {
    if (this.renewer !== null) return;
    this.renewer = setInterval(
      () => void this.renewAllShares(),
      Math.max(1_000, Math.floor(this.shares.ttlMs / 3)),
    );
    this.renewer.unref();
  }

  /** Checks health every `intervalMs` on a real timer (serve); tests call `checkHealth`. */
  watch(intervalMs = 5000): void {
    this.watcher ??= setInterval(() => this.checkHealth(), intervalMs);
    this.watcher.unref();
  }

  /**
   * Compares each connector's health with the last look: `degraded` or `down` after `ok` emits
   * `connector.degraded`, `ok` after that emits `connector.recovered`. A connector still starting
   * (degraded before its first success) says nothing until it has been ok once.
   */
  checkHealth(): void {
    for (const r of this.running) {
      const h = r.connector.health();
      if (h.state === 'off') continue;
      const healthy = h.state === 'ok';
      if (healthy === r.healthy) continue;
      if (!healthy && h.lastSuccessAt === null) continue;
      r.healthy = healthy;
      const data = {
        platform: r.connector.descriptor.platform,
        health: h.state,
        last_error: h.lastError,
        last_success_at: h.lastSuccessAt === null ? null : new Date(h.lastSuccessAt).toISOString(),
      };
      const type: ConnectorEvent = healthy ? 'connector.recovered' : 'connector.degraded';
      this.log.warn({ type, ...data }, 'connector health changed');
      // Each event is written in a transaction of its own (the webhook outbox), one after the
      // other so they commit in the order they happened; a failure is logged, never thrown into
      // the health watch.
      this.events = this.events
        .then(() => this.onEvent(type, data))
        .catch((error: unknown) => this.log.error({ err: error }, 'recording a connector event failed'));
    }
  }

  async stopAll(): Promise<void> {
    if (this.watcher !== null) clearInterval(this.watcher);
    this.watcher = null;
    if (this.renewer !== null) clearInterval(this.renewer);
    this.renewer = null;
    for (const { connector } of this.running.splice(0)) await connector.stop();
    // A graceful stop: the other nodes take this node's shares at their next renewal, not at the
    // leases' end.
    for (const platform of [...this.polling.keys()]) {
      this.polling.delete(platform);
      await this.shares.release(platform).catch((error: unknown) => {
        this.log.warn({ platform, err: error }, 'polling shares not released (they end with their lease)');
      });
    }
  }

  statuses(): ConnectorStatus[] {
    return this.running.map(({ connector, simulated }) => ({
      descriptor: connector.descriptor,
      enabled: true,
      simulated,
      role: roleOf(connector.descriptor),
      health: earnedHealth(connector.health()),
    }));
  }
}
