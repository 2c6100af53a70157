/**
 * @module privacy/viewer-tokens
 * Viewer tokens: short-lived JWTs (HS256, `jose`) bound to one user, which an end user's app
 * presents instead of an API key. The signing key is derived from `PRESENCE_SECRET_KEY` with HKDF
 * (its own label, so it is never the key that seals stored tokens); each token names its key
 * (`kid`). During a rotation the keys of `PRESENCE_SECRET_KEY_PREVIOUS` still verify the tokens
 * they signed, so nobody is signed out; once a key leaves the configuration, its tokens fail.
 *
 * A token also names its user's token epoch (`ep`), stored durably per user: revoking draws a new
 * epoch, deleting the user removes it, and every use compares. The epochs a request compares with
 * are held in memory (`RecheckCache`, as API keys are): a revocation on this node fails the user's
 * tokens at once, one on another node within 1 s (the cache re-reads the store at least that often),
 * and a request does not wait for the store unless the epoch was not read in the last second.
 */

import { createHmac, hkdfSync, randomBytes } from 'node:crypto';

import { jwtVerify, SignJWT, type JWTPayload } from 'jose';

import type { Clock } from '../core/clock';
import type { AsyncPrivacyStore } from '../core/ports';
import { RecheckCache } from '../core/recheck-cache';
import { isUnreachable as unreachable } from '../store/faults';

export const VIEWER_TOKEN_DEFAULT_TTL_S = 3600;
export const VIEWER_TOKEN_MAX_TTL_S = 86_400;
const AUDIENCE = 'presence-viewer';
const HKDF_INFO = 'presence-aggregator viewer tokens v1';

interface SigningKey {
  readonly kid: string;
  readonly key: Uint8Array;
}

/** The HMAC key for viewer tokens, derived from one 32-byte base64 secret. */
export function deriveViewerKey(secret: string): SigningKey {
  const key = Buffer.from(hkdfSync('sha256', Buffer.from(secret.trim(), 'base64'), '', HKDF_INFO, 32));
  // A public name that says nothing about the key.
  const kid = 'v' + createHmac('sha256', key).update('viewer token key id').digest('hex').slice(0, 12);
  return { kid, key };
}

/** A JWT's shape: three base64url parts. An API key (`pk_…`) never has it. */
export function looksLikeViewerToken(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

export interface ViewerIdentity {
  readonly userId: string;
}

interface Verified {
  readonly userId: string;
  readonly epoch: string;
  readonly expMs: number;
}

/** Verified tokens kept so that a busy viewer is not re-verified on every request. */
const CACHE_LIMIT = 10_000;

export class ViewerTokens {
  private readonly current: SigningKey;
  private readonly keys = new Map<string, Uint8Array>();
  private readonly verified = new Map<string, Verified>();
  /** Each user's current epoch as the store last showed it (null: no token was ever issued). */
  private readonly epochs: RecheckCache<string | null>;

  constructor(
    private readonly store: AsyncPrivacyStore,
    private readonly clock: Clock,
    /** Whether the user exists now: a token of a deleted user fails even before the epoch check. */
    private readonly hasUser: (userId: string) => boolean,
    secret: string,
    previousSecrets: readonly string[] = [],
  ) {
    this.current = deriveViewerKey(secret);
    for (const s of previousSecrets) {
      const k = deriveViewerKey(s);
      this.keys.set(k.kid, k.key);
    }
    this.keys.set(this.current.kid, this.current.key);
    this.epochs = new RecheckCache({
      clock,
      load: (userId) => store.viewerEpoch(userId),
      // As API keys: an epoch seen before holds while the store does not answer.
      keepWhile: unreachable,
    });
  }

  /** A token for `userId` (who must exist), valid `ttlSeconds` from now. */
  async issue(userId: string, ttlSeconds: number): Promise<{ token: string; expiresAt: number }> {
    // From the store, not memory: a token must name the epoch every node will compare with.
    let epoch = await this.store.viewerEpoch(userId);
    if (epoch === null) {
      epoch = randomBytes(12).toString('base64url');
      await this.store.setViewerEpoch(userId, epoch, this.clock.now());
    }
    this.epochs.set(userId, epoch);
    const nowS = Math.floor(this.clock.now() / 1000);
    const exp = nowS + ttlSeconds;
    const token = await new SignJWT({ ep: epoch })
      .setProtectedHeader({ alg: 'HS256', kid: this.current.kid, typ: 'JWT' })
      .setSubject(userId)
      .setAudience(AUDIENCE)
      .setIssuedAt(nowS)
      .setExpirationTime(exp)
      .sign(this.current.key);
    return { token, expiresAt: exp * 1000 };
  }

  /**
   * Every token of the user fails from now on (a new epoch; the next issued token names it): on
   * this node from the call, before the store has answered.
   */
  async revoke(userId: string): Promise<void> {
    const epoch = randomBytes(12).toString('base64url');
    this.epochs.set(userId, epoch);
    try {
      await this.store.setViewerEpoch(userId, epoch, this.clock.now());
    } catch (error) {
      // Not known to be stored: the next use asks the store.
      this.epochs.delete(userId);
      throw error;
    }
  }

  /**
   * After a user's deletion committed (the store dropped their epoch in its transaction): memory
   * follows, so a user created again under the id never meets the old epoch.
   */
  forget(userId: string): void {
    this.epochs.delete(userId);
  }

  /** The user a token acts for, or null when it is invalid, expired, revoked or its user is gone. */
  async verify(token: string): Promise<ViewerIdentity | null> {
    let v = this.verified.get(token);
    if (v === undefined) {
      const checked = await this.check(token);
      if (checked === null) return null;
      v = checked;
      if (this.verified.size >= CACHE_LIMIT) this.verified.clear();
      this.verified.set(token, v);
    }
    if (this.clock.now() >= v.expMs) {
      this.verified.delete(token);
      return null;
    }
    // Checked on every use: deletion at once; the epoch from memory (see the module comment).
    if (!this.hasUser(v.userId)) return null;
    const hit = this.epochs.peek(v.userId);
    const epoch = hit === undefined ? await this.epochs.get(v.userId) : hit.value;
    return epoch === v.epoch ? { userId: v.userId } : null;
  }

  private async check(token: string): Promise<Verified | null> {
    try {
      const { payload } = await jwtVerify(
        token,
        (header) => {
          const key = header.kid === undefined ? undefined : this.keys.get(header.kid);
          if (key === undefined) throw new Error('unknown key');
          return key;
        },
        {
          algorithms: ['HS256'],
          audience: AUDIENCE,
          currentDate: new Date(this.clock.now()),
          requiredClaims: ['sub', 'exp', 'iat'],
        },
      );
      return parse(payload);
    } catch {
      return null;
    }
  }
}

function parse(payload: JWTPayload): Verified | null {
  const { sub, exp, ep } = payload;
  if (typeof sub !== 'string' || typeof exp !== 'number' || typeof ep !== 'string') return null;
  return { userId: sub, epoch: ep, expMs: exp * 1000 };
}
