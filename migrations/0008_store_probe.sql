-- Always empty between probes. While the store cannot commit (disk full, read-only, locked), the
-- service tests whether it can again by inserting a row of one page here and deleting it in one
-- transaction: the insert needs a page as a real write would, and the commit writes to the log.
CREATE TABLE store_probe (
  id         INTEGER PRIMARY KEY,
  checked_at INTEGER NOT NULL,
  pad        BLOB NOT NULL
);
