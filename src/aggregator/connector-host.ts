/**
 * @module aggregator/connector-host
 * Runs connectors against the engine: gives each its context (clock, log, a `report` that
 * resolves accounts to users) and collects their health for `GET /v1/connectors`.
 */

import type { Connector, ConnectorContext, ConnectorDescriptor, ConnectorHealth } from '../core/connector';
import type { Log } from '../core/log';
import { StoreUnavailableError } from '../store/faults';
import type { PresenceEngine } from './engine';

export interface ConnectorStatus {
  readonly descriptor: ConnectorDescriptor;
  readonly enabled: boolean;
  readonly simulated: boolean;
  readonly health: ConnectorHealth;
}

export function connectorContext(
  engine: PresenceEngine,
  descriptor: ConnectorDescriptor,
  log: Log,
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
  };
}

/** What the host says when a connector's health crosses between ok and not ok. */
export type ConnectorEvent = 'connector.degraded' | 'connector.recovered';

export class ConnectorHost {
  private readonly running: { connector: Connector; simulated: boolean; healthy: boolean }[] = [];
  private watcher: NodeJS.Timeout | null = null;

  constructor(
    private readonly engine: PresenceEngine,
    private readonly log: Log,
    /** Told of each transition (the composition root sends it as a webhook). */
    private readonly onEvent: (type: ConnectorEvent, data: Record<string, unknown>) => void = () => undefined,
  ) {}

  async start(connector: Connector, options: { simulated?: boolean } = {}): Promise<void> {
    const d = connector.descriptor;
    await connector.start(connectorContext(this.engine, d, this.log));
    this.running.push({ connector, simulated: options.simulated ?? false, healthy: true });
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
      try {
        this.onEvent(type, data);
      } catch (error) {
        this.log.error({ err: error }, 'recording a connector event failed');
      }
    }
  }

  async stopAll(): Promise<void> {
    if (this.watcher !== null) clearInterval(this.watcher);
    this.watcher = null;
    for (const { connector } of this.running.splice(0)) await connector.stop();
  }

  statuses(): ConnectorStatus[] {
    return this.running.map(({ connector, simulated }) => ({
      descriptor: connector.descriptor,
      enabled: true,
      simulated,
      health: connector.health(),
    }));
  }
}
