/**
 * @module store/pg/held-devices
 * `HeldDeviceStore` on PostgreSQL (`Async<HeldDeviceStore>`): the device observations stream
 * connections held when the process last stopped (their label says so), read once at start.
 */

import type pg from 'pg';

import type { AsyncHeldDeviceStore, HeldDevice } from '../../core/ports';
import { type HeldDeviceRow, toHeldDevice } from '../rows/held-devices';

export class PgHeldDeviceStore implements AsyncHeldDeviceStore {
  constructor(private readonly pool: pg.Pool) {}

  async list(label: string): Promise<HeldDevice[]> {
    const { rows } = await this.pool.query<HeldDeviceRow>(
      `SELECT user_id, device, status, activity, expires_at FROM observations
       WHERE platform = 'device' AND device <> '' AND (label = $1 OR label ILIKE $2)`,
      // ILIKE: SQLite's LIKE, which the SQLite store uses, ignores ASCII case too.
      [label, `${label} %`],
    );
    return rows.map(toHeldDevice);
  }
}
