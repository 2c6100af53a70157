/**
 * @module store/pg/held-devices
 * `HeldDeviceStore` on PostgreSQL (`Async<HeldDeviceStore>`): the device observations stream
 * connections held when the process last stopped (their label says so), read once at start.
 */

import type pg from 'pg';

import type { AsyncHeldDeviceStore, HeldDevice } from '../../core/ports';
import type { Activity, Status } from '../../core/presence';

export class PgHeldDeviceStore implements AsyncHeldDeviceStore {
  constructor(private readonly pool: pg.Pool) {}

  async list(label: string): Promise<HeldDevice[]> {
    const { rows } = await this.pool.query<{
      user_id: string;
      device: string;
      status: Status;
      activity: Activity | null;
      expires_at: number;
    }>(
      `SELECT user_id, device, status, activity, expires_at FROM observations
       WHERE platform = 'device' AND device <> '' AND (label = $1 OR label ILIKE $2)`,
      // ILIKE: SQLite's LIKE, which the SQLite store uses, ignores ASCII case too.
      [label, `${label} %`],
    );
    return rows.map((r) => ({
      userId: r.user_id,
      deviceId: r.device,
      status: r.status,
      activity: r.activity,
      expiresAt: r.expires_at,
    }));
  }
}
