/**
 * @module test/unit/oauth-vault
 * The token vault alone: AES-256-GCM sealing, binding to a place, tampering, key ids and rotation keys.
 */

import { randomBytes } from 'node:crypto';

import { TokenVault, VaultError, keyIdOf, parseSecretKey } from '../../src/oauth/vault';

const secret = (): string => randomBytes(32).toString('base64');

describe('token vault (AES-256-GCM)', () => {
  const key = secret();
  const vault = TokenVault.fromSecrets(key);

  it('seals and opens, with a fresh IV every time and the key id in the clear', () => {
    const a = vault.seal('xoxp-secret-token', 'con_1:access_token');
    const b = vault.seal('xoxp-secret-token', 'con_1:access_token');
    expect(a).not.toBe(b);
    expect(a).not.toContain('xoxp');
    expect(a).toMatch(/^v1\.k[0-9a-f]{12}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
    expect(TokenVault.keyIdOf(a)).toBe(vault.currentKeyId);
    expect(vault.open(a, 'con_1:access_token')).toBe('xoxp-secret-token');
    expect(vault.open(vault.seal('', 'c'), 'c')).toBe('');
  });

  it('binds a ciphertext to its place: another row or column does not open it', () => {
    const sealed = vault.seal('token', 'con_1:access_token');
    expect(() => vault.open(sealed, 'con_2:access_token')).toThrow(VaultError);
    expect(() => vault.open(sealed, 'con_1:refresh_token')).toThrow(/failed authentication/);
  });

  it('detects tampering with the ciphertext, the tag or the IV', () => {
    const sealed = vault.seal('token-value', 'ctx');
    const parts = sealed.split('.');
    for (const i of [2, 3, 4]) {
      const p = [...parts];
      const bytes = Buffer.from(p[i] ?? '', 'base64url');
      bytes[0] = (bytes[0] ?? 0) ^ 1;
      p[i] = bytes.toString('base64url');
      expect(() => vault.open(p.join('.'), 'ctx')).toThrow(VaultError);
    }
    expect(() => vault.open('plaintext-token', 'ctx')).toThrow(/not a vault ciphertext/);
  });

  it('opens with an older key it was given, seals only with the current one, refuses unknown keys', () => {
    const old = secret();
    const sealedOld = TokenVault.fromSecrets(old).seal('t', 'c');
    const both = TokenVault.fromSecrets(key, [old]);
    expect(both.open(sealedOld, 'c')).toBe('t');
    expect(TokenVault.keyIdOf(both.seal('t', 'c'))).toBe(keyIdOf(Buffer.from(key, 'base64')));
    expect(() => vault.open(sealedOld, 'c')).toThrow(/not configured/);
  });

  it('derives a stable key id that does not reveal the key, and validates keys', () => {
    const k = parseSecretKey(key);
    expect(k.id).toBe(parseSecretKey(key).id);
    expect(k.id).not.toContain(Buffer.from(key, 'base64').toString('hex').slice(0, 12));
    expect(parseSecretKey(secret()).id).not.toBe(k.id);
    expect(() => parseSecretKey(randomBytes(16).toString('base64'))).toThrow(/32 bytes/);
    expect(() => parseSecretKey('not base64 at all!')).toThrow(VaultError);
    // Error messages never carry the key.
    try {
      parseSecretKey(key.slice(0, 20));
    } catch (e) {
      expect((e as Error).message).not.toContain(key.slice(0, 20));
    }
  });
});
