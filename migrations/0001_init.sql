-- The presence engine's durable state. Times are integer milliseconds since the Unix epoch (UTC).

CREATE TABLE users (
  user_id      TEXT PRIMARY KEY,
  display_name TEXT,
  timezone     TEXT,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- workspace_id is '' when the platform has no workspace (Discord user ids are global).
CREATE TABLE accounts (
  platform     TEXT NOT NULL,
  workspace_id TEXT NOT NULL DEFAULT '',
  external_id  TEXT NOT NULL,
  user_id      TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (platform, workspace_id, external_id)
) WITHOUT ROWID;
CREATE INDEX accounts_by_user ON accounts(user_id);

-- The last report of each platform (device = '') and of each device, per user.
CREATE TABLE observations (
  user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  platform      TEXT NOT NULL,
  device        TEXT NOT NULL DEFAULT '',
  status        TEXT NOT NULL,
  activity      TEXT,
  custom_status TEXT,            -- JSON {text, emoji, expiresAt} or NULL
  source        TEXT NOT NULL,
  raw           TEXT NOT NULL,   -- JSON of the platform's own value(s)
  label         TEXT NOT NULL,
  decay         TEXT,            -- JSON [{status, untilMs}] for inferred observations
  observed_at   INTEGER NOT NULL,
  changed_at    INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,
  PRIMARY KEY (user_id, platform, device)
) WITHOUT ROWID;
CREATE INDEX observations_by_expiry ON observations(expires_at);

CREATE TABLE overrides (
  user_id       TEXT PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
  status        TEXT NOT NULL,
  activity      TEXT,
  custom_status TEXT,
  set_at        INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- The reducer's last answer per user; version only ever rises.
CREATE TABLE aggregates (
  user_id        TEXT PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
  status         TEXT NOT NULL,
  activity       TEXT,
  custom_status  TEXT,
  source         TEXT,
  version        INTEGER NOT NULL,
  last_active_at INTEGER,
  updated_at     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE transitions (
  id            INTEGER PRIMARY KEY,
  user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  version       INTEGER NOT NULL,
  at            INTEGER NOT NULL,
  from_status   TEXT NOT NULL,
  to_status     TEXT NOT NULL,
  from_activity TEXT,
  to_activity   TEXT,
  source        TEXT,
  platform      TEXT
);
CREATE INDEX transitions_by_user ON transitions(user_id, at DESC, version DESC);
