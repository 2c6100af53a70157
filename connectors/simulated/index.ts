/**
 * @module connectors/simulated
 * Six simulated platforms behind the same connector interface as the real ones. A shared
 * `SimulatedWorld` says what each platform would send, in its own vocabulary; each simulated
 * connector maps that with the platform's real mapper and reports it like the real connector
 * would (polled, pushed or from a gateway). WhatsApp is inferred and fades; LinkedIn gives
 * identity only, never a status.
 */

import type { Connector, ConnectorContext, ConnectorHealth, MappedPresence } from '../../src/core/connector';
import type { Clock } from '../../src/core/clock';
import type { RealPlatform } from '../../src/core/presence';
import { CONNECTORS } from '../index';
import { toDiscordPresence } from '../discord/map';
import { toSlackPresence } from '../slack/map';
import { toTeamsPresence } from '../teams/map';
import { toWhatsAppSightings } from '../whatsapp/map';
import { toZoomEventPresence } from '../zoom/map';
import { SimulatedWorld, type SimEvent, type WorldOptions } from './world';

export { SimulatedWorld, type SimEvent, type SimPerson, type Life } from './world';

type PlatformEvent = Extract<SimEvent, { kind: RealPlatform }>;
export type HeartbeatEvent = Extract<SimEvent, { kind: 'heartbeat' }>;

/** What the demo shows per platform and user: the raw value last sent. */
export interface RawSighting {
  readonly platform: RealPlatform;
  readonly externalId: string;
  readonly raw: unknown;
  readonly at: number;
}

export class SimulatedConnector implements Connector {
  readonly descriptor;
  private ctx: ConnectorContext | null = null;
  private lastSuccessAt: number | null = null;
  private lastError: string | null = null;
  private unknownValues = new Set<string>();

  constructor(
    readonly platform: RealPlatform,
    private readonly pollMs: number,
  ) {
    const real = CONNECTORS[platform];
    this.descriptor = { ...real, notes: `Simulated. ${real.notes}` };
  }

  start(ctx: ConnectorContext): Promise<void> {
    this.ctx = ctx;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.ctx = null;
    return Promise.resolve();
  }

  health(): ConnectorHealth {
    const mode = this.descriptor.mode;
    const next = mode === 'poll' && this.lastSuccessAt !== null ? this.lastSuccessAt + this.pollMs : null;
    return {
      state: this.ctx === null ? 'off' : 'ok',
      lastSuccessAt: this.lastSuccessAt,
      lastError: this.lastError,
      nextPollAt: next,
    };
  }

  /** Maps one simulated payload with the platform's real mapper and reports it. */
  async handle(event: PlatformEvent): Promise<RawSighting[]> {
    const ctx = this.ctx;
    if (ctx === null) return [];
    const now = ctx.clock.now();
    const sightings: RawSighting[] = [];
    const send = async (
      externalId: string,
      workspaceId: string,
      mapped: MappedPresence | null,
      raw: unknown,
    ): Promise<void> => {
      if (mapped === null) {
        // Never guessed: logged once per value and left out (raw kept, nothing invented).
        const key = JSON.stringify(raw);
        if (!this.unknownValues.has(key))
          ctx.log.warn({ platform: this.platform, raw }, 'unknown platform value ignored');
        this.unknownValues.add(key);
        return;
      }
      sightings.push({ platform: this.platform, externalId, raw: mapped.state.raw, at: event.at });
      // Stamped with the simulated time it happened, so reports handled in one step keep their order.
      const presence = mapped.at === undefined ? { ...mapped, at: event.at } : mapped;
      await ctx.report({
        account: { platform: this.platform, workspaceId, externalId },
        presence,
        ttlMs: this.ttl(),
      });
    };
    switch (event.kind) {
      case 'slack':
        await send(
          event.account.externalId,
          event.account.workspaceId,
          toSlackPresence(event.raw, now),
          event.raw,
        );
        break;
      case 'teams':
        await send(
          event.account.externalId,
          event.account.workspaceId,
          toTeamsPresence(event.raw, now),
          event.raw,
        );
        break;
      case 'discord':
        await send(event.account.externalId, '', toDiscordPresence(event.raw, now), event.raw);
        break;
      case 'zoom':
        await send(event.account.externalId, '', toZoomEventPresence(event.raw, now), event.raw);
        break;
      case 'whatsapp':
        for (const s of toWhatsAppSightings(event.raw)) await send(s.ids[0]!, '', s.presence, event.raw);
        break;
    }
    this.lastSuccessAt = now;
    return sightings;
  }

  /** Polled platforms keep a report for three polls; pushed ones until the next reconcile and then some. */
  private ttl(): number {
    return this.descriptor.mode === 'poll' ? 3 * this.pollMs : this.descriptor.defaultTtlMs;
  }
}

/**
 * Drives the world from a clock and hands each event to its platform's connector, and each
 * device heartbeat to `onHeartbeat`.
 */
export class Simulation {
  readonly world: SimulatedWorld;
  readonly connectors: Record<RealPlatform, SimulatedConnector>;

  constructor(
    options: WorldOptions,
    private readonly clock: Clock,
  ) {
    this.world = new SimulatedWorld(options);
    const pollMs = this.world.pollMs;
    this.connectors = {
      discord: new SimulatedConnector('discord', pollMs),
      slack: new SimulatedConnector('slack', pollMs),
      teams: new SimulatedConnector('teams', pollMs),
      zoom: new SimulatedConnector('zoom', pollMs),
      whatsapp: new SimulatedConnector('whatsapp', pollMs),
      linkedin: new SimulatedConnector('linkedin', pollMs),
    };
  }

  /**
   * Advances to the clock's now. Events are handed over in time order; platform reports are
   * awaited together at the end, so one step costs one group commit.
   */
  async step(
    onHeartbeat: (hb: HeartbeatEvent) => Promise<void>,
    onEvent?: (e: SimEvent) => void,
  ): Promise<RawSighting[]> {
    const pending: Promise<RawSighting[]>[] = [];
    const beats: Promise<void>[] = [];
    for (const event of this.world.advanceTo(this.clock.now())) {
      onEvent?.(event);
      if (event.kind === 'heartbeat') beats.push(onHeartbeat(event));
      else if (event.kind !== 'life') pending.push(this.connectors[event.kind].handle(event));
    }
    const [sightings] = await Promise.all([Promise.all(pending), Promise.all(beats)]);
    return sightings.flat();
  }
}
