-- presence_apply with the versions the writer expects (store/pg/presence-store.ts), so that a
-- race between two nodes on one user no longer fails the whole grouped write: `expected` maps
-- each user whose presence the write changes to the aggregate version the writing node holds as
-- committed (0: none yet). The rows of those users are locked first (in user order, so two
-- writers lock in the same order); a user whose stored version differs (another node changed it
-- meanwhile) is stale: every op of that user is skipped, the other users' ops apply, and the
-- stale users are returned (the node reads them back and writes their change again, on top).
--
-- A user with no aggregate row yet cannot be locked: when another node inserts it concurrently,
-- the conditional write below still fails with SQLSTATE PS001 (as in 0006), and the caller
-- retries the write with that user expected at -1 (always stale).
DROP FUNCTION presence_apply(jsonb);

CREATE FUNCTION presence_apply(ops jsonb, expected jsonb) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  op jsonb;
  stale text[];
BEGIN
  PERFORM 1 FROM aggregates
  WHERE user_id IN (SELECT jsonb_object_keys(expected))
  ORDER BY user_id FOR UPDATE;
  SELECT coalesce(array_agg(e.key ORDER BY e.key), '{}') INTO stale
  FROM jsonb_each_text(expected) AS e
  LEFT JOIN aggregates a ON a.user_id = e.key
  WHERE coalesce(a.version, 0) <> e.value::bigint;

  FOR op IN SELECT value FROM jsonb_array_elements(ops) LOOP
    CONTINUE WHEN coalesce(op->>'user_id', '') = ANY(stale);
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
  RETURN stale;
END;
$$;
