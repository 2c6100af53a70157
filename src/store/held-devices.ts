/**
 * @module store/held-devices
 * `HeldDeviceStore` on SQLite: the device observations stream connections held when the process
 * last stopped (their label says so), read once at start. A row's expires_at is that of the
 * device's last change: refreshes since are packed apart (store/refresh-slots.ts), and the
 * service takes the loaded engine's time where it has one.
 */

import type { HeldDevice, HeldDeviceStore } from '../core/ports';
import type { Db } from './db';
import { type HeldDeviceRow, toHeldDevice } from './rows/held-devices';

export class SqliteHeldDeviceStore implements HeldDeviceStore {
  private readonly select;

  constructor(db: Db) {
    this.select = db.prepare(
      `SELECT user_id, device, status, activity, expires_at FROM observations
        WHERE platform = 'device' AND device <> '' AND (label = ? OR label LIKE ?)`,
    );
  }

  list(label: string): HeldDevice[] {
    const rows = this.select.all(label, `${label} %`) as HeldDeviceRow[];
    return rows.map(toHeldDevice);
  }
}
