/**
 * @module webhooks/secrets
 * Webhook signing secrets at rest: sealed by the token vault (AES-256-GCM under
 * `PRESENCE_SECRET_KEY`, see oauth/vault.ts), each bound to its endpoint and column, so the
 * database file never holds a `whsec_…` in the clear.
 *
 * Rows stored before migrations/0007 hold plain text (`secret_format = 'plain'`). SQL cannot
 * encrypt, so the migration only marks them, and `sealPlainSecrets` converts them in code the
 * next time the service starts with its key (and `presence keys rotate-secret` does too). The
 * conversion runs with `secure_delete` on and truncates the WAL after, so the old plain text does
 * not linger in freed pages or old WAL frames.
 */

import { ConfigError } from '../config/env';
import { TokenVault, VaultError } from '../oauth/vault';
import type { Db } from '../store/db';

export type SecretColumn = 'secret' | 'previous_secret';

/** The additional authenticated data of a sealed secret: a ciphertext moved elsewhere does not open. */
export const secretContext = (endpointId: string, column: SecretColumn): string =>
  `webhook_endpoints:${endpointId}:${column}`;

interface SecretRow {
  id: string;
  secret: string;
  previous_secret: string | null;
  secret_format: 'plain' | 'sealed';
}

const rowsOf = (db: Db): SecretRow[] =>
  db
    .prepare('SELECT id, secret, previous_secret, secret_format FROM webhook_endpoints ORDER BY id')
    .all() as SecretRow[];

const writeRow = (db: Db, id: string, secret: string, previous: string | null): void => {
  db.prepare(
    "UPDATE webhook_endpoints SET secret = ?, previous_secret = ?, secret_format = 'sealed' WHERE id = ?",
  ).run(secret, previous, id);
};

/**
 * Runs `fn` with SQLite's `secure_delete` on (what a write frees is overwritten with zeros), then
 * truncates the WAL, whose old frames would still hold the values replaced. Returns fn's result
 * and whether the WAL could be truncated (a reader on another connection can keep it).
 */
export function scrubbing<T>(db: Db, fn: () => T): { result: T; walTruncated: boolean } {
  const before = db.pragma('secure_delete', { simple: true }) as number;
  db.pragma('secure_delete = ON');
  let result: T;
  try {
    result = fn();
  } finally {
    db.pragma(`secure_delete = ${before}`);
  }
  const [cp] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number }[];
  return { result, walTruncated: cp === undefined || cp.busy === 0 };
}

/**
 * Seals every secret still in plain text, in one transaction. Returns how many endpoints it
 * converted (0 when there were none: then it writes nothing at all).
 */
export function sealPlainSecrets(db: Db, vault: TokenVault): { sealed: number; walTruncated: boolean } {
  const plain = (): SecretRow[] => rowsOf(db).filter((r) => r.secret_format === 'plain');
  if (plain().length === 0) return { sealed: 0, walTruncated: true };
  const { result, walTruncated } = scrubbing(db, () =>
    db.transaction(() => {
      const rows = plain(); // again, inside the transaction: another process may have done it
      for (const r of rows) {
        writeRow(
          db,
          r.id,
          vault.seal(r.secret, secretContext(r.id, 'secret')),
          r.previous_secret === null
            ? null
            : vault.seal(r.previous_secret, secretContext(r.id, 'previous_secret')),
        );
      }
      return rows.length;
    })(),
  );
  return { sealed: result, walTruncated };
}

/** Opens a sealed secret, or says clearly which key is missing (never the value). */
export function openSecret(
  vault: TokenVault,
  sealed: string,
  endpointId: string,
  column: SecretColumn,
): string {
  try {
    return vault.open(sealed, secretContext(endpointId, column));
  } catch (error) {
    if (!(error instanceof VaultError)) throw error;
    const keyId = TokenVault.keyIdOf(sealed);
    throw new ConfigError([
      keyId !== null && !vault.hasKey(keyId)
        ? `PRESENCE_SECRET_KEY: webhook endpoint ${endpointId}'s signing secret is sealed under key ${keyId}, which is not configured; start with that key (or add it to PRESENCE_SECRET_KEY_PREVIOUS)`
        : `PRESENCE_SECRET_KEY: webhook endpoint ${endpointId}'s signing secret does not open (${error.message})`,
    ]);
  }
}

export interface WebhookRotateReport {
  reencrypted: number;
  already_current: number;
}

/**
 * Re-encrypts every webhook secret under the vault's current key (plain-text ones are sealed).
 * Call inside the transaction of the whole rotation. A value sealed under a key the vault does
 * not hold stops it with a VaultError naming the key ids, nothing changed. Counts are values
 * (an endpoint during a rotation window has two).
 */
export function rotateWebhookSecrets(db: Db, vault: TokenVault): WebhookRotateReport {
  let reencrypted = 0;
  let current = 0;
  const unknown = new Map<string, number>();
  const updates: { id: string; secret: string; previous: string | null }[] = [];
  for (const r of rowsOf(db)) {
    const values = [r.secret, r.previous_secret].filter((v): v is string => v !== null);
    if (r.secret_format === 'sealed') {
      const kids = values.map((v) => TokenVault.keyIdOf(v) ?? '(not a ciphertext)');
      const missing = kids.filter((k) => !vault.hasKey(k));
      for (const k of missing) unknown.set(k, (unknown.get(k) ?? 0) + 1);
      if (missing.length > 0) continue;
      if (kids.every((k) => k === vault.currentKeyId)) {
        current += values.length;
        continue;
      }
    }
    const plain = (v: string | null, column: SecretColumn): string | null =>
      v === null ? null : r.secret_format === 'plain' ? v : vault.open(v, secretContext(r.id, column));
    const secret = plain(r.secret, 'secret')!;
    const previous = plain(r.previous_secret, 'previous_secret');
    updates.push({
      id: r.id,
      secret: vault.seal(secret, secretContext(r.id, 'secret')),
      previous: previous === null ? null : vault.seal(previous, secretContext(r.id, 'previous_secret')),
    });
    reencrypted += values.length;
  }
  if (unknown.size > 0) {
    const list = [...unknown].map(([k, n]) => `${k} (${n})`).join(', ');
    throw new VaultError(
      `webhook secrets are sealed under keys that were not given: ${list}; nothing was changed`,
    );
  }
  for (const u of updates) writeRow(db, u.id, u.secret, u.previous);
  return { reencrypted, already_current: current };
}
