-- The engine's grouped write in one round trip: presence_apply applies a JSON array of write ops
-- in order, in the caller's transaction (store/pg/presence-store.ts encodes them: one object per
-- op, keyed by column name; JSON-valued columns arrive as JSON text and are stored verbatim).
-- Sent one statement per op instead, a commit of a few hundred ops spent most of its time on
-- round trips.
--
-- An aggregate write is conditional: version n lands only on a row at n - 1, or where the user
-- has none yet. Otherwise another node already made a change from the same state, and the write
-- fails with SQLSTATE PS001, its DETAIL naming the user and version (the caller rolls back).
CREATE FUNCTION presence_apply(ops jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  op jsonb;
BEGIN
  FOR op IN SELECT value FROM jsonb_array_elements(ops) LOOP
    CASE op->>'op'
      WHEN 'user' THEN
        INSERT INTO users SELECT * FROM jsonb_populate_record(NULL::users, op)
        ON CONFLICT (user_id) DO UPDATE SET display_name = EXCLUDED.display_name,
          timezone = EXCLUDED.timezone, updated_at = EXCLUDED.updated_at;
      WHEN 'observation' THEN
        INSERT INTO observations SELECT * FROM jsonb_populate_record(NULL::observations, op)
        ON CONFLICT (user_id, platform, device) DO UPDATE SET status = EXCLUDED.status,
          activity = EXCLUDED.activity, custom_status = EXCLUDED.custom_status, source = EXCLUDED.source,
          raw = EXCLUDED.raw, label = EXCLUDED.label, decay = EXCLUDED.decay,
          observed_at = EXCLUDED.observed_at, changed_at = EXCLUDED.changed_at,
          expires_at = EXCLUDED.expires_at;
      WHEN 'observation-delete' THEN
        DELETE FROM observations
        WHERE user_id = op->>'user_id' AND platform = op->>'platform' AND device = op->>'device';
      WHEN 'override' THEN
        INSERT INTO overrides SELECT * FROM jsonb_populate_record(NULL::overrides, op)
        ON CONFLICT (user_id) DO UPDATE SET status = EXCLUDED.status, activity = EXCLUDED.activity,
          custom_status = EXCLUDED.custom_status, set_at = EXCLUDED.set_at, expires_at = EXCLUDED.expires_at;
      WHEN 'override-delete' THEN
        DELETE FROM overrides WHERE user_id = op->>'user_id';
      WHEN 'aggregate' THEN
        INSERT INTO aggregates SELECT * FROM jsonb_populate_record(NULL::aggregates, op)
        ON CONFLICT (user_id) DO UPDATE SET status = EXCLUDED.status, activity = EXCLUDED.activity,
          custom_status = EXCLUDED.custom_status, source = EXCLUDED.source, version = EXCLUDED.version,
          last_active_at = EXCLUDED.last_active_at, updated_at = EXCLUDED.updated_at
        WHERE aggregates.version = EXCLUDED.version - 1;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'stale aggregate version' USING ERRCODE = 'PS001',
            DETAIL = jsonb_build_object('userId', op->>'user_id', 'version', (op->>'version')::bigint)::text;
        END IF;
      WHEN 'transition' THEN
        INSERT INTO transitions (user_id, version, at, from_status, to_status, from_activity, to_activity,
            source, platform)
        SELECT r.user_id, r.version, r.at, r.from_status, r.to_status, r.from_activity, r.to_activity,
          r.source, r.platform
        FROM jsonb_populate_record(NULL::transitions, op) AS r;
      WHEN 'refresh' THEN
        UPDATE observations o SET observed_at = r.observed_at, expires_at = r.expires_at
        FROM jsonb_to_recordset(op->'observations')
          AS r(platform text, device text, observed_at bigint, expires_at bigint)
        WHERE o.user_id = op->>'user_id' AND o.platform = r.platform AND o.device = r.device;
        UPDATE aggregates SET last_active_at = (op->>'last_active_at')::bigint
        WHERE user_id = op->>'user_id';
      ELSE
        RAISE EXCEPTION 'unknown write op %', op->>'op';
    END CASE;
  END LOOP;
END;
$$;
