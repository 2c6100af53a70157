/**
 * @module oauth/vault
 * Encryption at rest for OAuth tokens: AES-256-GCM under `PRESENCE_SECRET_KEY`, one fresh 96-bit
 * IV per value, and the 128-bit tag checked on every read. Each ciphertext names the key that
 * sealed it (a key id derived from the key, so nobody has to name keys), which lets a rotation
 * re-encrypt old values while the new key is already in use.
 *
 * Each value is also bound to where it lives (additional authenticated data such as
 * `con_x:access_token`): a ciphertext copied into another row or column does not open.
 *
 * Format: `v1.<key id>.<iv>.<tag>.<ciphertext>`, the last three base64url.
 */

import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';

import type { SealedCell } from '../core/ports';

const FORMAT = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface VaultKey {
  readonly id: string;
  readonly key: Buffer;
}

/** Raised for a value that cannot be opened; its message never holds key or plaintext. */
export class VaultError extends Error {
  override name = 'VaultError';
}

/**
 * A short public name for a key. An HMAC under the key itself: stable, and says nothing about
 * the key to whoever reads the database.
 */
export function keyIdOf(key: Buffer): string {
  return (
    'k' +
    createHmac('sha256', key).update('presence-aggregator token vault key id').digest('hex').slice(0, 12)
  );
}

/** Parses a 32-byte base64 secret (the PRESENCE_SECRET_KEY format). */
export function parseSecretKey(secret: string): VaultKey {
  const key = Buffer.from(secret.trim(), 'base64');
  if (key.length !== 32 || !/^[A-Za-z0-9+/]+={0,2}$/.test(secret.trim())) {
    throw new VaultError('a token encryption key must be 32 bytes, base64-encoded (openssl rand -base64 32)');
  }
  return { id: keyIdOf(key), key };
}

export class TokenVault {
  private readonly keys = new Map<string, Buffer>();

  /** `current` seals; `current` and `older` open. */
  constructor(
    private readonly current: VaultKey,
    older: readonly VaultKey[] = [],
  ) {
    for (const k of older) this.keys.set(k.id, k.key);
    this.keys.set(current.id, current.key);
  }

  static fromSecrets(current: string, older: readonly string[] = []): TokenVault {
    return new TokenVault(parseSecretKey(current), older.map(parseSecretKey));
  }

  get currentKeyId(): string {
    return this.current.id;
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [
      FORMAT,
      this.current.id,
      iv.toString('base64url'),
      tag.toString('base64url'),
      ct.toString('base64url'),
    ].join('.');
  }

  open(sealed: string, context: string): string {
    const parts = sealed.split('.');
    if (parts.length !== 5 || parts[0] !== FORMAT) throw new VaultError('not a vault ciphertext');
    const [, keyId = '', iv = '', tag = '', ct = ''] = parts;
    const key = this.keys.get(keyId);
    if (key === undefined) throw new VaultError(`sealed under key ${keyId}, which is not configured`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new VaultError(`ciphertext under key ${keyId} failed authentication (tampered or moved)`);
    }
  }

  /** The key id a ciphertext names, or null when it is not one. */
  static keyIdOf(sealed: string): string | null {
    const parts = sealed.split('.');
    return parts.length === 5 && parts[0] === FORMAT ? (parts[1] ?? null) : null;
  }

  hasKey(keyId: string): boolean {
    return this.keys.has(keyId);
  }
}

/** Where a sealed connection value lives: the vault's additional authenticated data. */
export function sealContext(cell: Pick<SealedCell, 'table' | 'column' | 'key'>): string {
  return cell.table === 'connections' ? `${cell.key}:${cell.column}` : `state:${cell.key}:${cell.column}`;
}
