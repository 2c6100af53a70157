/**
 * @module store/rows/webhooks
 * The `webhook_endpoints` row as both databases return it, and its mapping to the port's
 * `StoredEndpoint` (the SQLite and PostgreSQL webhook stores share them). Lists are stored as JSON
 * text, `enabled` as 0/1; `endpointValues` is the way back, for the upserts.
 */

import type { DisabledReason, EventType, StoredEndpoint } from '../../core/ports';

export interface EndpointRow {
  id: string;
  url: string;
  events: string | null;
  user_ids: string | null;
  coalesce_ms: number;
  secret: string;
  previous_secret: string | null;
  previous_expires_at: number | null;
  enabled: number;
  disabled_reason: DisabledReason | null;
  disabled_at: number | null;
  failing_since: number | null;
  created_at: number;
  updated_at: number;
}

const json = (v: readonly string[] | null): string | null => (v === null ? null : JSON.stringify(v));

export function toEndpoint(r: EndpointRow): StoredEndpoint {
  return {
    id: r.id,
    url: r.url,
    events: r.events === null ? null : (JSON.parse(r.events) as EventType[]),
    userIds: r.user_ids === null ? null : (JSON.parse(r.user_ids) as string[]),
    coalesceMs: r.coalesce_ms,
    sealedSecret: r.secret,
    sealedPreviousSecret: r.previous_secret,
    previousExpiresAt: r.previous_expires_at,
    enabled: r.enabled === 1,
    disabledReason: r.disabled_reason,
    disabledAt: r.disabled_at,
    failingSince: r.failing_since,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/**
 * An endpoint's column values, in the order both upserts name the columns: id, url, events,
 * user_ids, coalesce_ms, secret, previous_secret, previous_expires_at, enabled, disabled_reason,
 * disabled_at, failing_since, created_at, updated_at.
 */
export const endpointValues = (e: StoredEndpoint): unknown[] => [
  e.id,
  e.url,
  json(e.events),
  json(e.userIds),
  e.coalesceMs,
  e.sealedSecret,
  e.sealedPreviousSecret,
  e.previousExpiresAt,
  e.enabled ? 1 : 0,
  e.disabledReason,
  e.disabledAt,
  e.failingSince,
  e.createdAt,
  e.updatedAt,
];
