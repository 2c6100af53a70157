/**
 * @module store/rows/held-devices
 * The device observation row the held-device stores read (SQLite and PostgreSQL alike), and its
 * mapping to the port's `HeldDevice`.
 */

import type { HeldDevice } from '../../core/ports';
import type { Activity, Status } from '../../core/presence';

export interface HeldDeviceRow {
  user_id: string;
  device: string;
  status: Status;
  activity: Activity | null;
  expires_at: number;
}

export const toHeldDevice = (r: HeldDeviceRow): HeldDevice => ({
  userId: r.user_id,
  deviceId: r.device,
  status: r.status,
  activity: r.activity,
  expiresAt: r.expires_at,
});
