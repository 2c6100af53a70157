-- The version check alone, for users a grouped write names but changes nothing of (`check` ops:
-- a report the same as the writing node's memory, whose memory may lag another node's change;
-- store/pg/presence-store.ts). It returns the listed users whose stored aggregate version is not
-- the one given (0: none yet), as presence_apply's own check does, but takes no row lock and
-- writes nothing: the lock in presence_apply is there so that nobody changes a user between its
-- check and its writes; with no writes, the answer is true of the moment the statement read it,
-- which lies between the report and its acknowledgement, so a change another node commits after
-- that is simply the later one (a lock would only make it wait, and it would then apply the same).
-- No lock also means no row-lock record in the WAL: a commit of checks only writes nothing.
CREATE FUNCTION presence_stale(ids text[], versions bigint[]) RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT coalesce(array_agg(e.id ORDER BY e.id), '{}')
  FROM unnest(ids, versions) AS e(id, version)
  LEFT JOIN aggregates a ON a.user_id = e.id
  WHERE coalesce(a.version, 0) <> e.version
$$;
