/**
 * @module store/rows/connections
 * A new connection's column values for the `connections` insert both databases run (the row type
 * itself, `ConnectionRow`, is the port's): connection_id, platform, kind, user_id, external_id,
 * workspace_id, scopes (JSON text), access_token, refresh_token, token_type, expires_at,
 * refresh_expires_at. The times that follow are the caller's. And the sealed cells key rotation
 * rewrites, from the token and verifier rows both stores read.
 */

import type { ConnectionRow, NewConnection, SealedCell, SealedTokens } from '../../core/ports';

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

/**
 * A reconnect's new grant, for the `replaceGrant` update both databases run: user_id, scopes (JSON
 * text), access_token, refresh_token, token_type, expires_at, refresh_expires_at.
 */
export const grantValues = (userId: string | null, t: SealedTokens): unknown[] => [
  userId,
  JSON.stringify(t.scopes ?? []),
  t.accessToken,
  t.refreshToken,
  t.tokenType,
  t.expiresAt,
  t.refreshExpiresAt,
];

/** The token columns of a `connections` row, as key rotation reads them. */
export type TokenRow = Pick<ConnectionRow, 'connection_id' | 'access_token' | 'refresh_token'>;

/** An `oauth_states` row that holds a sealed verifier. */
export interface VerifierRow {
  state_hash: string;
  code_verifier: string;
}

/** The sealed cells of those rows: each access token, each refresh token there is, each verifier. */
export function sealedCellsOf(conns: readonly TokenRow[], states: readonly VerifierRow[]): SealedCell[] {
  const cells: SealedCell[] = [];
  for (const c of conns) {
    cells.push({
      table: 'connections',
      column: 'access_token',
      key: c.connection_id,
      value: c.access_token,
    });
    if (c.refresh_token !== null) {
      cells.push({
        table: 'connections',
        column: 'refresh_token',
        key: c.connection_id,
        value: c.refresh_token,
      });
    }
  }
  for (const s of states) {
    cells.push({
      table: 'oauth_states',
      column: 'code_verifier',
      key: s.state_hash,
      value: s.code_verifier,
    });
  }
  return cells;
}
