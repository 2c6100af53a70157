/**
 * @module oauth/view
 * Connections as the API shows them (`GET /v1/connections`, the `connection.*` events): built
 * from the stored row, JSON-ready, snake_case, and never holding a token.
 */

import type { ConnectionKind, ConnectionRow, StoredHealth } from '../core/ports';
import { toIsoOrNull } from '../core/time';
import { PROVIDERS, isOAuthPlatform } from './providers';

/** A connection's health as shown: stored, or `refreshing` while a refresh is in flight. */
export type Health = StoredHealth | 'refreshing';

/** A connection as `GET /v1/connections` shows it. */
export interface ConnectionView {
  readonly id: string;
  readonly platform: string;
  /** 'user': a person's grant; 'app': the app's own (Zoom Server-to-Server, Microsoft client credentials). */
  readonly kind: ConnectionKind;
  readonly user_id: string | null;
  readonly external_id: string;
  readonly workspace_id: string | null;
  readonly scopes: string[];
  readonly health: Health;
  readonly last_error: string | null;
  readonly last_error_at: string | null;
  /** After a failed refresh: when the next attempt may run. */
  readonly next_retry_at: string | null;
  /** When the access token expires; null when it does not. */
  readonly expires_at: string | null;
  /** When the grant itself ends (refresh token, or the access token where nothing refreshes it). */
  readonly grant_expires_at: string | null;
  /** The grant cannot be refreshed and ends within the platform's warning window (LinkedIn: 7 days). */
  readonly expires_soon: boolean;
  readonly refreshable: boolean;
  readonly refreshed_at: string | null;
  readonly created_at: string;
  readonly updated_at: string;
}

/** What `onEvent` receives for `connection.reauth_required` and `connection.revoked`. */
export interface ConnectionEventData {
  readonly connection_id: string;
  readonly platform: string;
  readonly kind: ConnectionKind;
  readonly user_id: string | null;
  readonly external_id: string;
  readonly workspace_id: string | null;
  readonly reason: string;
  readonly at: string;
}

/**
 * A connection as `GET /v1/connections` shows it at `now`: never a token. `refreshing`: a refresh
 * is in flight; `refreshable`: something can renew its access token (a refresh token still
 * valid, or the app's grant).
 */
export function connectionView(
  row: ConnectionRow,
  now: number,
  state: { readonly refreshing: boolean; readonly refreshable: boolean },
): ConnectionView {
  const { refreshable } = state;
  // The grant ends with its refresh token where that has an end (an access token refreshed
  // late may outlive it), with the access token where nothing refreshes it, else never.
  const grantEnd =
    row.kind === 'user' && row.refresh_token !== null && row.refresh_expires_at !== null
      ? Math.max(row.refresh_expires_at, row.expires_at ?? 0)
      : refreshable
        ? null
        : row.expires_at;
  const warning = isOAuthPlatform(row.platform) ? PROVIDERS[row.platform].expiryWarningMs : null;
  let scopes: string[] = [];
  try {
    const parsed: unknown = JSON.parse(row.scopes);
    if (Array.isArray(parsed)) scopes = parsed.filter((s): s is string => typeof s === 'string');
  } catch {
    scopes = [];
  }
  return {
    id: row.connection_id,
    platform: row.platform,
    kind: row.kind,
    user_id: row.user_id,
    external_id: row.external_id,
    workspace_id: row.workspace_id === '' ? null : row.workspace_id,
    scopes,
    health: state.refreshing ? 'refreshing' : row.health,
    last_error: row.last_error,
    last_error_at: toIsoOrNull(row.last_error_at),
    next_retry_at: row.health === 'error' ? toIsoOrNull(row.retry_at) : null,
    expires_at: toIsoOrNull(row.expires_at),
    grant_expires_at: toIsoOrNull(grantEnd),
    expires_soon:
      warning !== null &&
      grantEnd !== null &&
      grantEnd - now <= warning &&
      (row.health === 'ok' || row.health === 'error'),
    refreshable,
    refreshed_at: toIsoOrNull(row.refreshed_at),
    created_at: toIsoOrNull(row.created_at) ?? '',
    updated_at: toIsoOrNull(row.updated_at) ?? '',
  };
}

/** What a `connection.*` webhook event says about a connection. */
export function connectionEventData(row: ConnectionRow, reason: string, now: number): ConnectionEventData {
  return {
    connection_id: row.connection_id,
    platform: row.platform,
    kind: row.kind,
    user_id: row.user_id,
    external_id: row.external_id,
    workspace_id: row.workspace_id === '' ? null : row.workspace_id,
    reason,
    at: toIsoOrNull(now) ?? '',
  };
}
