-- Viewers and privacy. Each user's visibility rules (a user without a row has the configured
-- defaults), the users they count as contacts (one-way), the users they block, and the epoch of
-- their viewer tokens (a token names the epoch it was issued under; revoking draws a new one).
-- Rows owned by a user go with the user (ON DELETE CASCADE); rows of others that name the user
-- go too (the trigger), so that a user created again under the same id starts with nothing.
CREATE TABLE privacy_settings (
  user_id    TEXT PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
  presence   TEXT NOT NULL CHECK (presence IN ('everyone', 'contacts', 'nobody')),
  last_seen  TEXT NOT NULL CHECK (last_seen IN ('everyone', 'contacts', 'nobody')),
  details    TEXT NOT NULL CHECK (details IN ('everyone', 'contacts', 'nobody')),
  reciprocal INTEGER NOT NULL CHECK (reciprocal IN (0, 1)),
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE privacy_contacts (
  user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  contact_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX privacy_contacts_by_contact ON privacy_contacts(contact_id);

CREATE TABLE privacy_blocks (
  user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  blocked_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, blocked_id)
) WITHOUT ROWID;
CREATE INDEX privacy_blocks_by_blocked ON privacy_blocks(blocked_id);

CREATE TABLE viewer_token_epochs (
  user_id    TEXT PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
  epoch      TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER privacy_forget_deleted_user AFTER DELETE ON users
BEGIN
  DELETE FROM privacy_contacts WHERE contact_id = OLD.user_id;
  DELETE FROM privacy_blocks WHERE blocked_id = OLD.user_id;
END;
