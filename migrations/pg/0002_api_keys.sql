-- API keys: only a SHA-256 of the secret part is stored; the key is shown once, at creation.
CREATE TABLE api_keys (
  id         TEXT COLLATE "C" PRIMARY KEY,
  name       TEXT,
  hash       TEXT NOT NULL,
  scopes     TEXT NOT NULL,   -- comma-separated: read, write, admin
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);
