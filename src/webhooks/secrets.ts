/**
 * @module webhooks/secrets
 * Webhook signing secrets at rest: sealed by the token vault (AES-256-GCM under
 * `PRESENCE_SECRET_KEY`, see oauth/vault.ts), each bound to its endpoint and column, so the
 * database file never holds a `whsec_…` in the clear.
 *
 * Rows stored before migrations/0007 hold plain text (`secret_format = 'plain'`). SQL cannot
 * encrypt, so the migration only marks them, and `sealPlainSecrets` converts them in code the
 * next time the service starts with its key (and `presence keys rotate-secret` does too). The
 * conversion runs through the store's `scrubbing`, so the old plain text does not linger in freed
 * pages or old WAL frames.
 */

import { ConfigError } from '../config/env';
import type {
  AsyncWebhookStore,
  EndpointRecord,
  EndpointSecrets,
  StoredEndpoint,
  StoreTx,
} from '../core/ports';
import { TokenVault, VaultError } from '../oauth/vault';

export type SecretColumn = 'secret' | 'previous_secret';

/** The additional authenticated data of a sealed secret: a ciphertext moved elsewhere does not open. */
export const secretContext = (endpointId: string, column: SecretColumn): string =>
  `webhook_endpoints:${endpointId}:${column}`;

/**
 * Seals every secret still in plain text, in one transaction. Returns how many endpoints it
 * converted (0 when there were none: then it writes nothing at all).
 */
export async function sealPlainSecrets(
  store: AsyncWebhookStore,
  vault: TokenVault,
): Promise<{ sealed: number; walTruncated: boolean }> {
  const plain = async (tx?: StoreTx): Promise<EndpointSecrets[]> =>
    (await store.endpointSecrets(tx)).filter((r) => r.format === 'plain');
  if ((await plain()).length === 0) return { sealed: 0, walTruncated: true };
  const { result, walTruncated } = await store.scrubbing(() =>
    store.transaction(async (tx) => {
      const rows = await plain(tx); // again, inside the transaction: another process may have done it
      for (const r of rows) {
        await store.writeSealedSecrets(
          r.id,
          vault.seal(r.secret, secretContext(r.id, 'secret')),
          r.previousSecret === null
            ? null
            : vault.seal(r.previousSecret, secretContext(r.id, 'previous_secret')),
          tx,
        );
      }
      return rows.length;
    }),
  );
  return { sealed: result, walTruncated };
}

/**
 * An endpoint's secrets sealed for storing: afresh at every save (a new IV each time), as saves
 * are rare (create, PATCH, disable).
 */
export function sealEndpoint(vault: TokenVault, ep: EndpointRecord): StoredEndpoint {
  const { secret, previousSecret, ...rest } = ep;
  return {
    ...rest,
    sealedSecret: vault.seal(secret, secretContext(ep.id, 'secret')),
    sealedPreviousSecret:
      previousSecret === null ? null : vault.seal(previousSecret, secretContext(ep.id, 'previous_secret')),
  };
}

/** A stored endpoint with its secrets opened. Throws ConfigError naming the endpoint and key. */
export function openEndpoint(vault: TokenVault, stored: StoredEndpoint): EndpointRecord {
  const { sealedSecret, sealedPreviousSecret, ...rest } = stored;
  return {
    ...rest,
    secret: openSecret(vault, sealedSecret, stored.id, 'secret'),
    previousSecret:
      sealedPreviousSecret === null
        ? null
        : openSecret(vault, sealedPreviousSecret, stored.id, 'previous_secret'),
  };
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
export async function rotateWebhookSecrets(
  store: AsyncWebhookStore,
  vault: TokenVault,
  tx?: StoreTx,
): Promise<WebhookRotateReport> {
  let reencrypted = 0;
  let current = 0;
  const unknown = new Map<string, number>();
  const updates: { id: string; secret: string; previous: string | null }[] = [];
  for (const r of await store.endpointSecrets(tx)) {
    const values = [r.secret, r.previousSecret].filter((v): v is string => v !== null);
    if (r.format === 'sealed') {
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
      v === null ? null : r.format === 'plain' ? v : vault.open(v, secretContext(r.id, column));
    const secret = plain(r.secret, 'secret')!;
    const previous = plain(r.previousSecret, 'previous_secret');
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
  for (const u of updates) await store.writeSealedSecrets(u.id, u.secret, u.previous, tx);
  return { reencrypted, already_current: current };
}
