/**
 * @module stream
 * The real-time stream, built from the engine: it reads presence from it (snapshots), reports
 * device connections to it (the same device path as HTTP heartbeats), and takes its committed
 * changes. The composition root calls `createStream` and mounts `streamRoutes`.
 */

import type { PresenceEngine } from '../aggregator/engine';
import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import type { StreamPrivacy } from './hub';
import { CONNECTION_LABEL, type DeviceLease, type DeviceReporter, type HeldDevice } from './devices';
import { StreamService } from './service';
import { StreamWorkers } from './workers/pool';

export { StreamService } from './service';

/** A device held by a connection, as the engine records it: the heartbeat path, labelled as a connection. */
export function engineDeviceReporter(engine: PresenceEngine): DeviceReporter {
  const via = { label: CONNECTION_LABEL, raw: { connection: 'websocket' } };
  return {
    report: (userId, deviceId, status, activity, ttlMs) =>
      engine.heartbeat(userId, deviceId, status, activity, ttlMs, via),
  };
}

export interface StreamSettings {
  readonly deviceGraceMs: number;
  readonly maxConnectionsPerKey: number;
  /** Worker processes holding API keys' WebSocket connections (0: all in this process). */
  readonly workers?: number;
  /** The log level the workers log at. */
  readonly logLevel?: string;
}

export function createStream(
  engine: PresenceEngine,
  options: {
    clock: Clock;
    log: Log;
    settings: StreamSettings;
    heldDevices?: () => readonly HeldDevice[];
    /** What viewer connections may see (absent: only API keys connect). */
    privacy?: StreamPrivacy;
    /**
     * Several nodes: the hub is fed by the shared change log's follower (src/cluster/), every
     * node's changes at the log's positions, instead of this engine's commits.
     */
    sharedLog?: boolean;
    /** Several nodes: device connections held here are renewed in Redis (cluster/expiry.ts). */
    deviceLease?: DeviceLease | null;
  },
): StreamService {
  const stream = new StreamService({
    clock: options.clock,
    log: options.log,
    reader: { getManyJson: (ids) => engine.getManyJson(ids), state: (id) => engine.state(id) },
    devices: engineDeviceReporter(engine),
    deviceGraceMs: options.settings.deviceGraceMs,
    maxConnectionsPerKey: options.settings.maxConnectionsPerKey,
    heldDevices: options.heldDevices,
    deviceLease: options.deviceLease ?? null,
    workers:
      (options.settings.workers ?? 0) > 0
        ? new StreamWorkers({
            count: options.settings.workers!,
            log: options.log,
            logLevel: options.settings.logLevel,
          })
        : null,
    ...(options.privacy === undefined ? {} : { hub: { privacy: options.privacy } }),
  });
  // A consumer of the change pipeline, fed after each commit is durable, in commit order.
  if (options.sharedLog !== true) engine.changes.add({ committed: (changes) => stream.committed(changes) });
  return stream;
}
