/**
 * @module store/rows/presence
 * The `users`, `accounts` and `transitions` rows as both databases return them, and their
 * mappings to the port's records; and the other way, the values a write of a user, an
 * observation, an override, an aggregate or a transition stores (JSON columns encoded here).
 * The SQLite and PostgreSQL presence stores share them.
 */

import type { AccountRecord, AggregateRecord, TransitionRecord, UserRecord } from '../../core/ports';
import type { Activity, Observation, Override, Platform, Source, Status } from '../../core/presence';

/** A JSON column's text: null for no value. */
export const json = (value: unknown): string | null =>
  value === null || value === undefined ? null : JSON.stringify(value);

export interface UserRow {
  user_id: string;
  display_name: string | null;
  timezone: string | null;
  created_at: number;
  updated_at: number;
}

export interface AccountRow {
  platform: Platform;
  workspace_id: string;
  external_id: string;
  user_id: string;
  created_at: number;
}

export interface TransitionRow {
  user_id: string;
  version: number;
  at: number;
  from_status: Status;
  to_status: Status;
  from_activity: Activity | null;
  to_activity: Activity | null;
  source: Source | null;
  platform: string | null;
}

export const toUser = (r: UserRow): UserRecord => ({
  userId: r.user_id,
  displayName: r.display_name,
  timezone: r.timezone,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const toAccount = (r: AccountRow): AccountRecord => ({
  platform: r.platform,
  workspaceId: r.workspace_id,
  externalId: r.external_id,
  userId: r.user_id,
  createdAt: r.created_at,
});

export const toTransition = (r: TransitionRow): TransitionRecord => ({
  userId: r.user_id,
  version: r.version,
  at: r.at,
  fromStatus: r.from_status,
  toStatus: r.to_status,
  fromActivity: r.from_activity,
  toActivity: r.to_activity,
  source: r.source,
  platform: r.platform,
});

/** The values of a `users` row written for `u`. */
export const userValues = (u: UserRecord) => ({
  user_id: u.userId,
  display_name: u.displayName,
  timezone: u.timezone,
  created_at: u.createdAt,
  updated_at: u.updatedAt,
});

/** The values of an `observations` row written for `o`. */
export const observationValues = (userId: string, o: Observation) => ({
  user_id: userId,
  platform: o.platform,
  device: o.device,
  status: o.status,
  activity: o.activity,
  custom_status: json(o.customStatus),
  source: o.source,
  raw: JSON.stringify(o.raw ?? null),
  label: o.label,
  decay: json(o.decay),
  observed_at: o.observedAt,
  changed_at: o.changedAt,
  expires_at: o.expiresAt,
});

/** The values of an `overrides` row written for `ov`. */
export const overrideValues = (userId: string, ov: Override) => ({
  user_id: userId,
  status: ov.status,
  activity: ov.activity,
  custom_status: json(ov.customStatus),
  set_at: ov.setAt,
  expires_at: ov.expiresAt,
});

/** The values of an `aggregates` row written for `a`. */
export const aggregateValues = (userId: string, a: AggregateRecord) => ({
  user_id: userId,
  status: a.status,
  activity: a.activity,
  custom_status: json(a.customStatus),
  source: a.source,
  version: a.version,
  last_active_at: a.lastActiveAt,
  updated_at: a.updatedAt,
});

/** The values of a `transitions` row written for `t`. */
export const transitionValues = (t: TransitionRecord) => ({
  user_id: t.userId,
  version: t.version,
  at: t.at,
  from_status: t.fromStatus,
  to_status: t.toStatus,
  from_activity: t.fromActivity,
  to_activity: t.toActivity,
  source: t.source,
  platform: t.platform,
});
