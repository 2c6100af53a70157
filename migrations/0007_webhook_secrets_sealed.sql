-- Webhook signing secrets move into the token vault: `secret` and `previous_secret` hold vault
-- ciphertexts ("v1.<key id>.<iv>.<tag>.<ciphertext>", AES-256-GCM under PRESENCE_SECRET_KEY, bound
-- to the endpoint and column) instead of the `whsec_…` text.
--
-- Plain SQL cannot encrypt, so this migration only marks every row stored so far as 'plain'. The
-- service converts them in code when it next starts with its key (src/webhooks/secrets.ts,
-- `sealPlainSecrets`: one transaction, secure_delete on, the WAL truncated after), as does
-- `presence keys rotate-secret`. Rows written from now on are 'sealed'.
ALTER TABLE webhook_endpoints ADD COLUMN secret_format TEXT NOT NULL DEFAULT 'plain'
  CHECK (secret_format IN ('plain', 'sealed'));
