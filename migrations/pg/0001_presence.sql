-- PostgreSQL schema of the presence engine's durable state, the same tables as the SQLite
-- migrations (migrations/0001, 0006, 0008). Times are BIGINT milliseconds since the Unix epoch
-- (UTC). Text that is sorted on is COLLATE "C", so rows come back in the byte order SQLite uses.

CREATE TABLE users (
  user_id      TEXT COLLATE "C" PRIMARY KEY,
  display_name TEXT,
  timezone     TEXT,
  created_at   BIGINT NOT NULL,
  updated_at   BIGINT NOT NULL
);

-- workspace_id is '' when the platform has no workspace (Discord user ids are global).
CREATE TABLE accounts (
  platform     TEXT COLLATE "C" NOT NULL,
  workspace_id TEXT COLLATE "C" NOT NULL DEFAULT '',
  external_id  TEXT COLLATE "C" NOT NULL,
  user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  created_at   BIGINT NOT NULL,
  PRIMARY KEY (platform, workspace_id, external_id)
);
CREATE INDEX accounts_by_user ON accounts(user_id);

-- The last report of each platform (device = '') and of each device, per user.
CREATE TABLE observations (
  user_id       TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  platform      TEXT COLLATE "C" NOT NULL,
  device        TEXT COLLATE "C" NOT NULL DEFAULT '',
  status        TEXT NOT NULL,
  activity      TEXT,
  custom_status TEXT,            -- JSON {text, emoji, expiresAt} or NULL
  source        TEXT NOT NULL,
  raw           TEXT NOT NULL,   -- JSON of the platform's own value(s)
  label         TEXT NOT NULL,
  decay         TEXT,            -- JSON [{status, untilMs}] for inferred observations
  observed_at   BIGINT NOT NULL,
  changed_at    BIGINT NOT NULL,
  expires_at    BIGINT NOT NULL,
  PRIMARY KEY (user_id, platform, device)
);

CREATE TABLE overrides (
  user_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
  status        TEXT NOT NULL,
  activity      TEXT,
  custom_status TEXT,
  set_at        BIGINT NOT NULL,
  expires_at    BIGINT NOT NULL
);

-- The reducer's last answer per user. version rises by one per change, and a write of version
-- n only lands on a row at n - 1 (store/pg/presence-store.ts): two nodes cannot both make the
-- same change.
CREATE TABLE aggregates (
  user_id        TEXT COLLATE "C" PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
  status         TEXT NOT NULL,
  activity       TEXT,
  custom_status  TEXT,
  source         TEXT,
  version        BIGINT NOT NULL,
  last_active_at BIGINT,
  updated_at     BIGINT NOT NULL
);

CREATE TABLE transitions (
  id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id       TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  version       BIGINT NOT NULL,
  at            BIGINT NOT NULL,
  from_status   TEXT NOT NULL,
  to_status     TEXT NOT NULL,
  from_activity TEXT,
  to_activity   TEXT,
  source        TEXT,
  platform      TEXT
);
CREATE INDEX transitions_by_user ON transitions(user_id, at DESC, version DESC);

-- Always empty between probes: readiness after a failure commits an insert and a delete here.
CREATE TABLE store_probe (
  id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  checked_at BIGINT NOT NULL
);
