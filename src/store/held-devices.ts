/**
 * @module store/held-devices
 * `HeldDeviceStore` on SQLite: the device observations stream connections held when the process
 * last stopped (their label says so), read once at start. A row's expires_at is that of the
 * device's last change: refreshes since are packed apart (store/refresh-slots.ts), and the
 * service takes the loaded engine's time where it has one.
 */

import type { Activity, Status } from '../core/presence';
import type { HeldDevice, HeldDeviceStore } from '../core/ports';
import type { Db } from './db';

export class SqliteHeldDeviceStore implements HeldDeviceStore {
  private readonly select;

  constructor(db: Db) {
    this.select = db.prepare(
      `SELECT user_id, device, status, activity, expires_at FROM observations
        WHERE platform = 'device' AND device <> '' AND (label = ? OR label LIKE ?)`,
    );
  }

  list(label: string): HeldDevice[] {
    const rows = this.select.all(label, `${label} %`) as {
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
}
