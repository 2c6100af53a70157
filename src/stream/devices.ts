/**
 * @module stream/devices
 * Devices as WebSocket connections. A connection that sends `identify` holds that device's
 * presence (platform `device`, under `platforms.device.devices` like an HTTP heartbeat) for as
 * long as it is open and answers pings: the device's entry is kept live with a long hold, and
 * refreshed while the connection lives, so nothing needs sending.
 *
 * When the last connection holding a device closes (or is found dead: two missed pings), the
 * entry is cut to expire one grace (`PRESENCE_DEVICE_GRACE_MS`) later, and the engine's own
 * expiry takes it offline then. A reconnect within the grace reports the same state again,
 * which is a refresh: no change, no webhook, no flapping.
 *
 * After a restart no connection holds anything yet: every entry a connection held when the
 * process stopped is cut to expire one grace after start, so a device that reconnects in time
 * changes nothing and one that does not is offline then, not at once and not never.
 *
 * With several nodes (a `DeviceLease`, src/cluster/expiry.ts) the long hold stays in memory only:
 * the node holding the connection keeps the entry's expiry in Redis at now + grace, renewed
 * while it holds it, and a close ends the renewals (the grace starts then). Nothing is cut at a
 * restart then: what connections held before it expires in Redis one grace after the last
 * renewal, swept by any node, so a restart cannot bring back a device that went offline meanwhile.
 */

import type { Clock } from '../core/clock';
import type { HeldDevice } from '../core/ports';
import type { Activity, Status } from '../core/presence';

export type { HeldDevice } from '../core/ports';

/** How a device connection's state reaches the engine. */
export interface DeviceReporter {
  /** Records the device's state, live for `ttlMs` from now (creating the user on first sight). */
  report(
    userId: string,
    deviceId: string,
    status: Status,
    activity: Activity | null,
    ttlMs: number,
  ): Promise<void>;
}

/** The label of a connection-held entry: what tells it apart from an HTTP heartbeat's. */
export const CONNECTION_LABEL = 'connection';

/** While a connection holds a device, its entry is live this long, refreshed on every pong. */
export const HOLD_MS = 3_600_000;

export const DEFAULT_GRACE_MS = 5000;

interface Session {
  readonly userId: string;
  readonly deviceId: string;
  status: Status;
  activity: Activity | null;
  /** Open connections holding it (a phone and its reconnect may overlap). */
  holders: number;
}

/** Several-node mode: the devices held by this node's connections, renewed in Redis. */
export interface DeviceLease {
  hold(userId: string, deviceId: string): void;
  release(userId: string, deviceId: string): void;
}

/** One device's key in a map of devices. */
export const deviceKey = (userId: string, deviceId: string): string => `${userId}\u0000${deviceId}`;

export class DeviceConnections {
  private readonly sessions = new Map<string, Session>();
  private readonly graceMs: number;
  private readonly lease: DeviceLease | null;
  private stopping = false;

  constructor(
    private readonly reporter: DeviceReporter,
    private readonly clock: Clock,
    options: { graceMs?: number; lease?: DeviceLease | null } = {},
  ) {
    this.graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    this.lease = options.lease ?? null;
  }

  /** Devices held by an open connection now. */
  get connected(): number {
    return this.sessions.size;
  }

  /** Cuts what connections held before this process started to one grace from now. */
  restarted(held: readonly HeldDevice[]): Promise<void>[] {
    if (this.lease !== null) return []; // several nodes: Redis ends them (module comment)
    const until = this.clock.now() + this.graceMs;
    const acks: Promise<void>[] = [];
    for (const h of held) {
      if (h.expiresAt <= until || this.sessions.has(deviceKey(h.userId, h.deviceId))) continue;
      acks.push(this.reporter.report(h.userId, h.deviceId, h.status, h.activity, this.graceMs));
    }
    return acks;
  }

  /** A connection now holds this device; its state as given (default online). */
  hold(userId: string, deviceId: string, status: Status, activity: Activity | null): Promise<void> {
    const key = deviceKey(userId, deviceId);
    let s = this.sessions.get(key);
    if (s === undefined) this.sessions.set(key, (s = { userId, deviceId, status, activity, holders: 0 }));
    s.holders += 1;
    s.status = status;
    s.activity = activity;
    this.lease?.hold(userId, deviceId);
    return this.reporter.report(userId, deviceId, status, activity, HOLD_MS);
  }

  /** The holding connection changed the device's state (`status` message). */
  update(userId: string, deviceId: string, status: Status, activity: Activity | null): Promise<void> {
    const s = this.sessions.get(deviceKey(userId, deviceId));
    if (s === undefined) return Promise.resolve();
    s.status = status;
    s.activity = activity;
    return this.reporter.report(userId, deviceId, status, activity, HOLD_MS);
  }

  /** The connection answered a ping: the hold is refreshed (in memory; no disk write, no change). */
  alive(userId: string, deviceId: string): void {
    const s = this.sessions.get(deviceKey(userId, deviceId));
    if (s !== undefined)
      void this.reporter.report(userId, deviceId, s.status, s.activity, HOLD_MS).catch(() => undefined);
  }

  /**
   * The service is stopping: connections closed from now on keep their hold, which the next
   * start cuts to one grace (see `restarted`), so a restart does not take every device offline.
   */
  stop(): void {
    this.stopping = true;
  }

  /** A holding connection closed or was found dead: the device goes offline one grace from now. */
  release(userId: string, deviceId: string): Promise<void> {
    const key = deviceKey(userId, deviceId);
    const s = this.sessions.get(key);
    if (s === undefined || this.stopping) return Promise.resolve();
    s.holders -= 1;
    if (s.holders > 0) return Promise.resolve();
    this.sessions.delete(key);
    this.lease?.release(userId, deviceId);
    return this.reporter.report(userId, deviceId, s.status, s.activity, this.graceMs);
  }
}
