-- Deleting a user forgets their webhook events (the presence payloads) and every delivery of
-- them, in the transaction that deletes the user: this index finds them without reading the
-- whole outbox while that transaction holds the write lock.
CREATE INDEX webhook_events_by_user ON webhook_events(user_id) WHERE user_id IS NOT NULL;
