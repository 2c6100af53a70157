-- Several nodes keep users, linked accounts and privacy in memory; each follows the others' writes
-- by LISTEN presence_follow (src/store/pg/listener.ts). These triggers announce every such row
-- written, whoever writes it (a node, the CLI, a cascade): NOTIFY is delivered at commit only,
-- in commit order, and never for a rollback, so a listener re-reads what is durable. Payloads:
--   u:<user_id>                           a user created or deleted
--   a:<platform>\x1f<workspace>\x1f<id>   an account linked, moved or unlinked
--   p:<user_id>                           that user's privacy settings, contacts or blocks
-- Identical payloads of one transaction are delivered once (PostgreSQL folds them).

CREATE FUNCTION presence_follow_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('presence_follow', 'u:' || OLD.user_id);
  ELSE
    PERFORM pg_notify('presence_follow', 'u:' || NEW.user_id);
  END IF;
  RETURN NULL;
END;
$$;

CREATE FUNCTION presence_follow_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify('presence_follow',
      'a:' || OLD.platform || chr(31) || OLD.workspace_id || chr(31) || OLD.external_id);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM pg_notify('presence_follow',
      'a:' || NEW.platform || chr(31) || NEW.workspace_id || chr(31) || NEW.external_id);
  END IF;
  RETURN NULL;
END;
$$;

CREATE FUNCTION presence_follow_privacy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify('presence_follow', 'p:' || OLD.user_id);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM pg_notify('presence_follow', 'p:' || NEW.user_id);
  END IF;
  RETURN NULL;
END;
$$;

-- Users: only creation and deletion (a display name or time zone is read from the row each time).
CREATE TRIGGER users_follow AFTER INSERT OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION presence_follow_user();
CREATE TRIGGER accounts_follow AFTER INSERT OR UPDATE OR DELETE ON accounts
  FOR EACH ROW EXECUTE FUNCTION presence_follow_account();
CREATE TRIGGER privacy_settings_follow AFTER INSERT OR UPDATE OR DELETE ON privacy_settings
  FOR EACH ROW EXECUTE FUNCTION presence_follow_privacy();
CREATE TRIGGER privacy_contacts_follow AFTER INSERT OR UPDATE OR DELETE ON privacy_contacts
  FOR EACH ROW EXECUTE FUNCTION presence_follow_privacy();
CREATE TRIGGER privacy_blocks_follow AFTER INSERT OR UPDATE OR DELETE ON privacy_blocks
  FOR EACH ROW EXECUTE FUNCTION presence_follow_privacy();
