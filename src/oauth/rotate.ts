/**
 * @module oauth/rotate
 * Key rotation for OAuth connections: every sealed token and PKCE verifier re-encrypted under a
 * new `PRESENCE_SECRET_KEY`, for `presence keys rotate-secret`.
 */

import type { AsyncConnectionStore, StoreTx } from '../core/ports';
import { TokenVault, VaultError, parseSecretKey, sealContext } from './vault';

export interface RotateReport {
  /** The id of the key everything is now sealed under. */
  readonly key_id: string;
  readonly reencrypted: number;
  readonly already_current: number;
}

/**
 * `presence keys rotate-secret`: re-encrypts every stored token (and pending PKCE verifier)
 * under `newKey`, opening each with whichever of `oldKeys` sealed it. One transaction: a value
 * sealed under a key that is not given stops it with nothing changed. Running it again is
 * harmless (values already under `newKey` are left as they are), which also covers values a
 * server still on the old key wrote meanwhile. Restart the server with the new key afterwards
 * (or give it the old one in `previousSecretKeys` until then). Inside a caller's transaction `tx`
 * (the CLI rotates webhook secrets in the same one), it runs there: transactions do not nest.
 */
export function rotateSecret(
  store: AsyncConnectionStore,
  keys: { readonly oldKeys: readonly string[]; readonly newKey: string },
  tx?: StoreTx,
): Promise<RotateReport> {
  const next = parseSecretKey(keys.newKey);
  const vault = new TokenVault(next, keys.oldKeys.map(parseSecretKey));
  const rotate = async (tx: StoreTx): Promise<RotateReport> => {
    let reencrypted = 0;
    let current = 0;
    const unknown = new Map<string, number>();
    for (const cell of await store.sealedCells(tx)) {
      const kid = TokenVault.keyIdOf(cell.value) ?? '(not a ciphertext)';
      if (!vault.hasKey(kid)) {
        unknown.set(kid, (unknown.get(kid) ?? 0) + 1);
        continue;
      }
      const ctx = sealContext(cell);
      const plaintext = vault.open(cell.value, ctx);
      if (kid === next.id) {
        current += 1;
        continue;
      }
      await store.writeCell(cell, vault.seal(plaintext, ctx), tx);
      reencrypted += 1;
    }
    if (unknown.size > 0) {
      const list = [...unknown].map(([k, n]) => `${k} (${n})`).join(', ');
      throw new VaultError(`values are sealed under keys that were not given: ${list}; nothing was changed`);
    }
    return { key_id: next.id, reencrypted, already_current: current };
  };
  return tx === undefined ? store.transaction(rotate) : rotate(tx);
}
