-- A snapshot of the engine's hot state, and what changed since it (store/snapshot.ts).
--
-- Reading 1,000,000 users' joined rows is most of a restart. The engine writes its hot state
-- (users, observations, overrides, aggregates, accounts, refresh times) as a few large blobs
-- instead, now and then and at a graceful stop; a restart reads them and then only the rows of
-- the users that changed after the snapshot began.
--
-- A snapshot is the rows of one generation: part 0 is its header (the change sequence it covers,
-- the schema, a checksum per part), written last, in the transaction that drops the previous
-- generation. Until it exists the generation is partial and ignored.
CREATE TABLE presence_snapshot (
  gen  INTEGER NOT NULL,
  part INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (gen, part)
) WITHOUT ROWID;

-- Every write to a user's presence rows, and to a slot of packed refresh times, appends here in
-- its own transaction (the triggers below, so no writer can forget it: the engine, the CLI, a
-- cascade). A snapshot covers the sequence as it was when it began; the users and slots after it
-- are read from their rows at load. AUTOINCREMENT: a sequence is never reused, even once the
-- covered entries are trimmed.
CREATE TABLE presence_changes (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id TEXT,
  slot    INTEGER
);

CREATE TRIGGER users_changed_insert AFTER INSERT ON users
BEGIN INSERT INTO presence_changes (user_id) VALUES (NEW.user_id); END;
CREATE TRIGGER users_changed_update AFTER UPDATE ON users
BEGIN INSERT INTO presence_changes (user_id) VALUES (NEW.user_id); END;
CREATE TRIGGER users_changed_delete AFTER DELETE ON users
BEGIN INSERT INTO presence_changes (user_id) VALUES (OLD.user_id); END;

CREATE TRIGGER observations_changed_insert AFTER INSERT ON observations
BEGIN INSERT INTO presence_changes (user_id) VALUES (NEW.user_id); END;
CREATE TRIGGER observations_changed_update AFTER UPDATE ON observations
BEGIN INSERT INTO presence_changes (user_id) VALUES (NEW.user_id); END;
CREATE TRIGGER observations_changed_delete AFTER DELETE ON observations
BEGIN INSERT INTO presence_changes (user_id) VALUES (OLD.user_id); END;

CREATE TRIGGER overrides_changed_insert AFTER INSERT ON overrides
BEGIN INSERT INTO presence_changes (user_id) VALUES (NEW.user_id); END;
CREATE TRIGGER overrides_changed_update AFTER UPDATE ON overrides
BEGIN INSERT INTO presence_changes (user_id) VALUES (NEW.user_id); END;
CREATE TRIGGER overrides_changed_delete AFTER DELETE ON overrides
BEGIN INSERT INTO presence_changes (user_id) VALUES (OLD.user_id); END;

CREATE TRIGGER aggregates_changed_insert AFTER INSERT ON aggregates
BEGIN INSERT INTO presence_changes (user_id) VALUES (NEW.user_id); END;
CREATE TRIGGER aggregates_changed_update AFTER UPDATE ON aggregates
BEGIN INSERT INTO presence_changes (user_id) VALUES (NEW.user_id); END;
CREATE TRIGGER aggregates_changed_delete AFTER DELETE ON aggregates
BEGIN INSERT INTO presence_changes (user_id) VALUES (OLD.user_id); END;

CREATE TRIGGER accounts_changed_insert AFTER INSERT ON accounts
BEGIN INSERT INTO presence_changes (user_id) VALUES (NEW.user_id); END;
CREATE TRIGGER accounts_changed_update AFTER UPDATE ON accounts
BEGIN
  INSERT INTO presence_changes (user_id) VALUES (OLD.user_id);
  INSERT INTO presence_changes (user_id) VALUES (NEW.user_id);
END;
CREATE TRIGGER accounts_changed_delete AFTER DELETE ON accounts
BEGIN INSERT INTO presence_changes (user_id) VALUES (OLD.user_id); END;

CREATE TRIGGER refresh_slots_changed_insert AFTER INSERT ON refresh_slots
BEGIN INSERT INTO presence_changes (slot) VALUES (NEW.slot); END;
CREATE TRIGGER refresh_slots_changed_update AFTER UPDATE ON refresh_slots
BEGIN INSERT INTO presence_changes (slot) VALUES (NEW.slot); END;
CREATE TRIGGER refresh_slots_changed_delete AFTER DELETE ON refresh_slots
BEGIN INSERT INTO presence_changes (slot) VALUES (OLD.slot); END;
