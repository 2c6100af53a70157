/**
 * @module store/held-devices
 * The device entries stream connections held when the process last stopped (their label says
 * so), read once at start so that they can be cut to one grace (stream/devices.ts).
 */

import type { Activity, Status } from '../core/presence';
import type { HeldDevice } from '../stream/devices';
import { CONNECTION_LABEL } from '../stream/devices';
import type { Db } from './db';

export function heldDevices(db: Db): HeldDevice[] {
  const rows = db
    .prepare(
      `SELECT user_id, device, status, activity, expires_at FROM observations
        WHERE platform = 'device' AND device <> '' AND (label = ? OR label LIKE ?)`,
    )
    .all(CONNECTION_LABEL, `${CONNECTION_LABEL} %`) as {
    user_id: string;
    device: string;
    status: Status;
    activity: Activity | null;
    expires_at: number;
  }[];
  return rows.map((r) => ({
    userId: r.user_id,
    deviceId: r.device,
    status: r.status,
    activity: r.activity,
    expiresAt: r.expires_at,
  }));
}
