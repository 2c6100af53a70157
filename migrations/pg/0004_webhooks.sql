-- Change webhooks, as SQLite's migrations/0003, 0005 and 0007: endpoints (signing secrets sealed
-- by the token vault), the outbox of events, one delivery row per (event, endpoint), one attempt
-- row per failed attempt.

CREATE TABLE webhook_endpoints (
  id                   TEXT COLLATE "C" PRIMARY KEY,
  url                  TEXT NOT NULL,
  events               TEXT,
  user_ids             TEXT,
  coalesce_ms          BIGINT NOT NULL DEFAULT 0,
  secret               TEXT NOT NULL,
  previous_secret      TEXT,
  previous_expires_at  BIGINT,
  enabled              INTEGER NOT NULL DEFAULT 1,
  disabled_reason      TEXT,
  disabled_at          BIGINT,
  failing_since        BIGINT,
  created_at           BIGINT NOT NULL,
  updated_at           BIGINT NOT NULL,
  secret_format        TEXT NOT NULL DEFAULT 'sealed' CHECK (secret_format IN ('plain', 'sealed'))
);

-- Identity columns never go back, even after pruning, so "pending rows after id N" is exact.
CREATE TABLE webhook_events (
  seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  msg_id     TEXT NOT NULL UNIQUE,
  type       TEXT NOT NULL,
  user_id    TEXT COLLATE "C",
  version    BIGINT,
  created_at BIGINT NOT NULL,
  payload    TEXT NOT NULL
);
CREATE INDEX webhook_events_by_time ON webhook_events(created_at);
CREATE INDEX webhook_events_by_user ON webhook_events(user_id) WHERE user_id IS NOT NULL;

-- claimed_by / claim_expires_at: the node that holds a pending delivery to send it, until the
-- claim expires (a node that dies loses its claims, and another claims them again).
CREATE TABLE webhook_deliveries (
  id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  endpoint_id       TEXT COLLATE "C" NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  event_seq         BIGINT NOT NULL REFERENCES webhook_events(seq),
  lane              TEXT COLLATE "C" NOT NULL,
  status            TEXT NOT NULL,
  attempts          INTEGER NOT NULL DEFAULT 0,
  next_attempt_at   BIGINT,
  not_before        BIGINT NOT NULL DEFAULT 0,
  replay            INTEGER NOT NULL DEFAULT 0,
  last_attempt_at   BIGINT,
  last_status_code  INTEGER,
  last_latency_ms   BIGINT,
  last_error        TEXT,
  created_at        BIGINT NOT NULL,
  updated_at        BIGINT NOT NULL,
  claimed_by        TEXT,
  claim_expires_at  BIGINT
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries(endpoint_id, id);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(endpoint_id, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_pending_lanes ON webhook_deliveries(endpoint_id, lane, id)
  WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries(event_seq);

CREATE TABLE webhook_attempts (
  id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  delivery_id     BIGINT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
  attempt         INTEGER NOT NULL,
  at              BIGINT NOT NULL,
  status_code     INTEGER,
  latency_ms      BIGINT NOT NULL,
  error           TEXT,
  next_attempt_at BIGINT
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts(delivery_id);
