-- Viewers and privacy, as SQLite's migrations/0009: visibility settings, contacts, blocks and the
-- epoch of each user's viewer tokens. Rows owned by a user go with the user (ON DELETE CASCADE);
-- rows of others that name the user go too (the trigger).
CREATE TABLE privacy_settings (
  user_id    TEXT COLLATE "C" PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
  presence   TEXT NOT NULL CHECK (presence IN ('everyone', 'contacts', 'nobody')),
  last_seen  TEXT NOT NULL CHECK (last_seen IN ('everyone', 'contacts', 'nobody')),
  details    TEXT NOT NULL CHECK (details IN ('everyone', 'contacts', 'nobody')),
  reciprocal INTEGER NOT NULL CHECK (reciprocal IN (0, 1)),
  updated_at BIGINT NOT NULL
);

CREATE TABLE privacy_contacts (
  user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  contact_id TEXT COLLATE "C" NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, contact_id)
);
CREATE INDEX privacy_contacts_by_contact ON privacy_contacts(contact_id);

CREATE TABLE privacy_blocks (
  user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  blocked_id TEXT COLLATE "C" NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, blocked_id)
);
CREATE INDEX privacy_blocks_by_blocked ON privacy_blocks(blocked_id);

CREATE TABLE viewer_token_epochs (
  user_id    TEXT COLLATE "C" PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
  epoch      TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE FUNCTION privacy_forget_deleted_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM privacy_contacts WHERE contact_id = OLD.user_id;
  DELETE FROM privacy_blocks WHERE blocked_id = OLD.user_id;
  RETURN OLD;
END;
$$;
CREATE TRIGGER privacy_forget_deleted_user AFTER DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION privacy_forget_deleted_user();
