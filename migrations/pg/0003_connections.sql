-- OAuth connections and pending authorize states, as SQLite's migrations/0004. Token columns and
-- PKCE verifiers hold the token vault's ciphertexts ("v1.<key id>.<iv>.<tag>.<ciphertext>"),
-- sealed above the store exactly as on SQLite, never plaintext.

CREATE TABLE oauth_states (
  state_hash    TEXT COLLATE "C" PRIMARY KEY,
  platform      TEXT NOT NULL,
  user_id       TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  redirect_uri  TEXT NOT NULL,
  code_verifier TEXT,
  created_at    BIGINT NOT NULL,
  expires_at    BIGINT NOT NULL
);
CREATE INDEX oauth_states_by_expiry ON oauth_states(expires_at);

CREATE TABLE connections (
  connection_id      TEXT COLLATE "C" PRIMARY KEY,
  platform           TEXT COLLATE "C" NOT NULL,
  kind               TEXT NOT NULL CHECK (kind IN ('user', 'app')),
  user_id            TEXT COLLATE "C" REFERENCES users(user_id) ON DELETE CASCADE,
  external_id        TEXT COLLATE "C" NOT NULL,
  workspace_id       TEXT COLLATE "C" NOT NULL DEFAULT '',
  scopes             TEXT NOT NULL DEFAULT '[]',
  access_token       TEXT NOT NULL,
  refresh_token      TEXT,
  token_type         TEXT,
  expires_at         BIGINT,
  refresh_expires_at BIGINT,
  health             TEXT NOT NULL DEFAULT 'ok'
                     CHECK (health IN ('ok', 'reauth_required', 'revoked', 'error')),
  last_error         TEXT,
  last_error_at      BIGINT,
  retry_at           BIGINT,
  failures           INTEGER NOT NULL DEFAULT 0,
  refreshed_at       BIGINT,
  expiry_warned_at   BIGINT,
  created_at         BIGINT NOT NULL,
  updated_at         BIGINT NOT NULL,
  CHECK ((kind = 'user') = (user_id IS NOT NULL)),
  UNIQUE (platform, kind, workspace_id, external_id)
);
CREATE INDEX connections_by_user ON connections(user_id);
CREATE INDEX connections_by_expiry ON connections(expires_at);
