/**
 * @module store/rows/connections
 * A new connection's column values for the `connections` insert both databases run (the row type
 * itself, `ConnectionRow`, is the port's): connection_id, platform, kind, user_id, external_id,
 * workspace_id, scopes (JSON text), access_token, refresh_token, token_type, expires_at,
 * refresh_expires_at. The times that follow are the caller's.
 */

import type { NewConnection } from '../../core/ports';

export const newConnectionValues = (c: NewConnection): unknown[] => [
  c.id,
  c.platform,
  c.kind,
  c.userId,
  c.externalId,
  c.workspaceId,
  JSON.stringify(c.scopes ?? []),
  c.accessToken,
  c.refreshToken,
  c.tokenType,
  c.expiresAt,
  c.refreshExpiresAt,
];
