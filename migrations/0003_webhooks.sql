-- Change webhooks (docs/api.md): endpoints, the transactional outbox of events, one delivery row
-- per (event, endpoint), and one attempt row per HTTP attempt. Times are integer ms since the epoch.

-- Secrets are kept as given to the consumer (`whsec_<base64>`), because signing needs them.
CREATE TABLE webhook_endpoints (
  id                   TEXT PRIMARY KEY,           -- ep_<ulid>
  url                  TEXT NOT NULL,
  events               TEXT,                       -- JSON array of event types, NULL = every type
  user_ids             TEXT,                       -- JSON array of user ids, NULL = every user
  coalesce_ms          INTEGER NOT NULL DEFAULT 0,
  secret               TEXT NOT NULL,
  previous_secret      TEXT,                       -- still signs until previous_expires_at
  previous_expires_at  INTEGER,
  enabled              INTEGER NOT NULL DEFAULT 1,
  disabled_reason      TEXT,                       -- 'gone' | 'failing' | 'manual'
  disabled_at          INTEGER,
  failing_since        INTEGER,                    -- first failure since the last success
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL
) WITHOUT ROWID;

-- The outbox. `payload` is the exact body sent; `msg_id` is the webhook-id, stable across retries
-- and replays. An event is written only when at least one endpoint wants it.
CREATE TABLE webhook_events (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  msg_id     TEXT NOT NULL UNIQUE,
  type       TEXT NOT NULL,
  user_id    TEXT,
  version    INTEGER,
  created_at INTEGER NOT NULL,
  payload    TEXT NOT NULL
);
CREATE INDEX webhook_events_by_time ON webhook_events(created_at);

-- AUTOINCREMENT: ids never go back, even after pruning, so "pending rows after id N" is exact.
-- status: 'pending' | 'delivered' | 'failed' (given up, or the endpoint was disabled) |
-- 'coalesced' (folded into a later delivery by the endpoint's coalescing window).
CREATE TABLE webhook_deliveries (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  endpoint_id       TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  event_seq         INTEGER NOT NULL REFERENCES webhook_events(seq),
  lane              TEXT NOT NULL,                 -- ordering key: 'u:<user_id>', 'k:<platform>', ...
  status            TEXT NOT NULL,
  attempts          INTEGER NOT NULL DEFAULT 0,
  next_attempt_at   INTEGER,
  not_before        INTEGER NOT NULL DEFAULT 0,    -- end of the coalescing window
  replay            INTEGER NOT NULL DEFAULT 0,
  last_attempt_at   INTEGER,
  last_status_code  INTEGER,
  last_latency_ms   INTEGER,
  last_error        TEXT,
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries(endpoint_id, id);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(endpoint_id, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries(event_seq);

-- Failed attempts only: a successful attempt is always a delivery's last, and its figures are the
-- delivery's last_* columns. That saves a row per delivery on the hot path; the log shows both.
CREATE TABLE webhook_attempts (
  id              INTEGER PRIMARY KEY,
  delivery_id     INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
  attempt         INTEGER NOT NULL,
  at              INTEGER NOT NULL,
  status_code     INTEGER,
  latency_ms      INTEGER NOT NULL,
  error           TEXT,
  next_attempt_at INTEGER
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts(delivery_id);
