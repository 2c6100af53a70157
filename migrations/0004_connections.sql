-- OAuth connections (issue 5). Times are integer milliseconds since the Unix epoch (UTC).
-- Token columns hold vault ciphertexts ("v1.<key id>.<iv>.<tag>.<ciphertext>", AES-256-GCM under
-- PRESENCE_SECRET_KEY, bound to the row and column), never plaintext.

-- Pending authorize flows: one row per `state` handed to a platform, deleted when the callback
-- uses it (single use) or when it expires (10 minutes). Only a SHA-256 of the state is kept, so
-- reading the database does not let anyone complete someone else's flow.
CREATE TABLE oauth_states (
  state_hash    TEXT PRIMARY KEY,
  platform      TEXT NOT NULL,
  user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  redirect_uri  TEXT NOT NULL,
  code_verifier TEXT,            -- PKCE verifier, vault ciphertext; NULL where the platform takes no PKCE
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX oauth_states_by_expiry ON oauth_states(expires_at);

-- kind 'user': a person granted access (user_id set); kind 'app': the app's own grant
-- (Zoom Server-to-Server, Microsoft client credentials), user_id NULL.
CREATE TABLE connections (
  connection_id      TEXT PRIMARY KEY,
  platform           TEXT NOT NULL,
  kind               TEXT NOT NULL CHECK (kind IN ('user', 'app')),
  user_id            TEXT REFERENCES users(user_id) ON DELETE CASCADE,
  external_id        TEXT NOT NULL,
  workspace_id       TEXT NOT NULL DEFAULT '',
  scopes             TEXT NOT NULL DEFAULT '[]',   -- JSON array of granted scopes
  access_token       TEXT NOT NULL,
  refresh_token      TEXT,
  token_type         TEXT,
  expires_at         INTEGER,                      -- access token; NULL when it does not expire
  refresh_expires_at INTEGER,                      -- refresh token, where the platform says
  health             TEXT NOT NULL DEFAULT 'ok'
                     CHECK (health IN ('ok', 'reauth_required', 'revoked', 'error')),
  last_error         TEXT,                         -- sanitised: never a token
  last_error_at      INTEGER,
  retry_at           INTEGER,                      -- cool-down after a failed refresh
  failures           INTEGER NOT NULL DEFAULT 0,   -- consecutive failed refreshes
  refreshed_at       INTEGER,
  expiry_warned_at   INTEGER,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL,
  CHECK ((kind = 'user') = (user_id IS NOT NULL)),
  UNIQUE (platform, kind, workspace_id, external_id)
);
CREATE INDEX connections_by_user ON connections(user_id);
CREATE INDEX connections_by_expiry ON connections(expires_at);
