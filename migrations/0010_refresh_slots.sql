-- Refreshed times of unchanged reports, packed. Writing them as one UPDATE per observation and one
-- per aggregate cost about 2 million row writes a run at 1,000,000 users, scattered over the
-- B-trees. Instead users are spread over a fixed number of slots by a hash of their id, and each
-- row holds, for every user of its slot, the times of their observations and their last activity
-- (a binary list; store/refresh-slots.ts). A run replaces the rows of the slots whose users were
-- refreshed. At load a time here wins over the row's when it is later.
CREATE TABLE refresh_slots (
  slot INTEGER PRIMARY KEY,
  data BLOB NOT NULL
);
