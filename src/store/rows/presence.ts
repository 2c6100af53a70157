/**
 * @module store/rows/presence
 * The `users`, `accounts` and `transitions` rows as both databases return them, and their
 * mappings to the port's records; the SQLite and PostgreSQL presence stores share them.
 */

import type { AccountRecord, TransitionRecord, UserRecord } from '../../core/ports';
import type { Activity, Platform, Source, Status } from '../../core/presence';

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
