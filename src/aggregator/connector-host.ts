/**
 * @module aggregator/connector-host
 * Runs connectors against the engine: gives each its context (clock, log, a `report` that
 * resolves accounts to users) and collects their health for `GET /v1/connectors`.
 */

import type { Connector, ConnectorContext, ConnectorDescriptor, ConnectorHealth } from '../core/connector';
import type { Log } from '../core/log';
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
      await ack;
      return true;
    },
    accounts: () => engine.accountsFor(descriptor.platform),
  };
}

export class ConnectorHost {
  private readonly running: { connector: Connector; simulated: boolean }[] = [];

  constructor(
    private readonly engine: PresenceEngine,
    private readonly log: Log,
  ) {}

  async start(connector: Connector, options: { simulated?: boolean } = {}): Promise<void> {
    const d = connector.descriptor;
    await connector.start(connectorContext(this.engine, d, this.log));
    this.running.push({ connector, simulated: options.simulated ?? false });
  }

  async stopAll(): Promise<void> {
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
