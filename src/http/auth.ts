/**
 * @module http/auth
 * API keys and their scopes, and a per-key rate limit. Routes declare `config: { scope }`;
 * routes without one (health, metrics, docs, platform inbound, the OAuth callback) are public.
 */

import type { FastifyInstance, onRequestHookHandler } from 'fastify';

import type { Clock } from '../core/clock';
import { AppError } from '../core/errors';
import type { ApiKeyInfo, ApiKeyStore, Scope } from '../store/key-store';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a key needs for this route; absent means the route is public. */
    scope?: Scope;
  }
  interface FastifyRequest {
    apiKey: ApiKeyInfo | null;
  }
}

/**
 * A token bucket per key: `perMinute` requests a minute on average, bursts up to the same number.
 * In memory: a limit per process, which is what a single-node deployment needs.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;

  constructor(
    private readonly perMinute: number,
    private readonly clock: Clock,
  ) {
    this.perMs = perMinute / 60_000;
  }

  /** 0 when allowed, otherwise the seconds to wait. */
  take(key: string): number {
    const now = this.clock.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.perMinute, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000));
  }
}

const BEARER = /^Bearer ([^\s]+)$/;

export function registerAuth(app: FastifyInstance, keys: ApiKeyStore, limiter: RateLimiter): void {
  app.decorateRequest('apiKey', null);
  // Each route that needs a scope gets its own check as it is added: public routes run no auth
  // code at all, and a protected one does not look its scope up on every request.
  app.addHook('onRoute', (route) => {
    const scope = route.config?.scope;
    if (scope === undefined) return;
    const check = authenticate(keys, limiter, scope);
    const own = route.onRequest === undefined ? [] : [route.onRequest].flat();
    route.onRequest = [check, ...own];
  });
}

function authenticate(keys: ApiKeyStore, limiter: RateLimiter, scope: Scope): onRequestHookHandler {
  return (request, _reply, done) => {
    const header = request.headers.authorization;
    const m = header === undefined ? null : BEARER.exec(header);
    if (m === null) {
      done(
        new AppError('unauthorized', 'missing API key: send Authorization: Bearer <key>', [], {
          'www-authenticate': 'Bearer',
        }),
      );
      return;
    }
    const key = keys.verify(m[1]!);
    if (key === null) {
      done(new AppError('unauthorized', 'invalid or revoked API key', [], { 'www-authenticate': 'Bearer' }));
      return;
    }
    if (!key.scopes.includes(scope)) {
      done(
        new AppError(
          'forbidden',
          `this route needs the ${scope} scope; the key has ${key.scopes.join(', ')}`,
        ),
      );
      return;
    }
    const wait = limiter.take(key.id);
    if (wait > 0) {
      done(
        new AppError('rate_limited', `rate limit exceeded; retry in ${wait} s`, [], {
          'retry-after': String(wait),
        }),
      );
      return;
    }
    request.apiKey = key;
    done();
  };
}
