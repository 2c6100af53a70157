/**
 * @module http/auth
 * API keys and their scopes, and a per-key rate limit. Routes declare `config: { scope }`;
 * routes without one (health, metrics, docs, platform inbound, the OAuth callback) are public.
 */

import type { FastifyInstance, onRequestHookHandler, preHandlerHookHandler } from 'fastify';

import type { Clock } from '../core/clock';
import { AppError } from '../core/errors';
import type { ApiKeyInfo, ApiKeys, Scope } from '../keys/api-keys';
import { looksLikeViewerToken, type ViewerIdentity, type ViewerTokens } from '../privacy/viewer-tokens';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a key needs for this route; absent means the route is public. */
    scope?: Scope;
    /**
     * Whether a viewer token (an end user's app) is accepted instead of a key: `read` for the
     * presence reads (which then project what the viewer may see), `self` where the body's
     * `user_id` must be the viewer's own (device heartbeats). Absent: viewer tokens get 403.
     */
    viewer?: 'read' | 'self';
    /**
     * The key may also come as `?access_token=` (the stream routes: browsers cannot set headers
     * on EventSource or WebSocket). The access log prints the route, never the URL.
     */
    queryToken?: boolean;
  }
  interface FastifyRequest {
    apiKey: ApiKeyInfo | null;
    /** The user a viewer token acts for; null for an API key (the operator, who sees everything). */
    viewer: ViewerIdentity | null;
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

export function registerAuth(
  app: FastifyInstance,
  keys: ApiKeys,
  limiter: RateLimiter,
  viewers: ViewerTokens | null = null,
): void {
  app.decorateRequest('apiKey', null);
  app.decorateRequest('viewer', null);
  // Each route that needs a scope gets its own check as it is added: public routes run no auth
  // code at all, and a protected one does not look its scope up on every request.
  app.addHook('onRoute', (route) => {
    const scope = route.config?.scope;
    if (scope === undefined) return;
    const viewer = route.config?.viewer;
    const check = authenticate(
      keys,
      limiter,
      scope,
      viewer === undefined ? null : viewers,
      route.config?.queryToken === true,
    );
    const own = route.onRequest === undefined ? [] : [route.onRequest].flat();
    route.onRequest = [check, ...own];
    if (viewer === 'self') {
      const pre = route.preHandler === undefined ? [] : [route.preHandler].flat();
      route.preHandler = [ownUserOnly, ...pre];
    }
  });
}

/** A viewer acts only as their own user's devices. */
const ownUserOnly: preHandlerHookHandler = (request, _reply, done) => {
  const viewer = request.viewer;
  const body = request.body as { user_id?: unknown } | undefined;
  if (viewer !== null && body?.user_id !== viewer.userId) {
    done(new AppError('forbidden', "a viewer token acts only for its own user's devices"));
    return;
  }
  done();
};

const VIEWER_REFUSED =
  'a viewer token can read presence and act as its own devices, nothing else: this route needs an API key';

/** The token of a request: the bearer header, or (where allowed) `?access_token=`. */
export function tokenOf(
  authorization: string | undefined,
  accessToken: unknown,
  queryToken: boolean,
): string | null {
  const m = authorization === undefined ? null : BEARER.exec(authorization);
  if (m !== null) return m[1]!;
  return queryToken && typeof accessToken === 'string' && accessToken !== '' ? accessToken : null;
}

/** The API key a token names, with the scope asked for, or the 401/403 to answer. */
export async function keyFor(keys: ApiKeys, token: string | null, scope: Scope): Promise<ApiKeyInfo> {
  if (token === null)
    throw new AppError('unauthorized', 'missing API key: send Authorization: Bearer <key>', [], {
      'www-authenticate': 'Bearer',
    });
  const key = keys.verifyCached(token) ?? (await keys.verify(token));
  const refused = refusal(key, scope);
  if (refused !== null) throw refused;
  return key!;
}

/** The 401/403 for a key that is not valid, or lacks `scope`; null when it may pass. */
function refusal(key: ApiKeyInfo | null, scope: Scope): AppError | null {
  if (key === null)
    return new AppError('unauthorized', 'invalid or revoked API key', [], { 'www-authenticate': 'Bearer' });
  if (!key.scopes.includes(scope))
    return new AppError(
      'forbidden',
      `this route needs the ${scope} scope; the key has ${key.scopes.join(', ')}`,
    );
  return null;
}

/** `viewers` is null where the route takes no viewer token (or viewer tokens are off). */
function authenticate(
  keys: ApiKeys,
  limiter: RateLimiter,
  scope: Scope,
  viewers: ViewerTokens | null,
  queryToken = false,
): onRequestHookHandler {
  const limited = (id: string): AppError | null => {
    const wait = limiter.take(id);
    return wait > 0
      ? new AppError('rate_limited', `rate limit exceeded; retry in ${wait} s`, [], {
          'retry-after': String(wait),
        })
      : null;
  };
  return (request, _reply, done) => {
    const query = request.query as Record<string, unknown> | undefined;
    const token = tokenOf(request.headers.authorization, query?.access_token, queryToken);
    if (token === null) {
      done(
        new AppError('unauthorized', 'missing API key: send Authorization: Bearer <key>', [], {
          'www-authenticate': 'Bearer',
        }),
      );
      return;
    }
    if (looksLikeViewerToken(token)) {
      if (viewers === null) {
        done(new AppError('forbidden', VIEWER_REFUSED));
        return;
      }
      viewers.verify(token).then(
        (viewer) => {
          if (viewer === null) {
            done(
              new AppError('unauthorized', 'invalid, expired or revoked viewer token', [], {
                'www-authenticate': 'Bearer',
              }),
            );
            return;
          }
          const refused = limited(`viewer:${viewer.userId}`);
          if (refused === null) request.viewer = viewer;
          done(refused ?? undefined);
        },
        (error: unknown) => done(error as Error),
      );
      return;
    }
    const admit = (key: ApiKeyInfo | null): void => {
      const refused = refusal(key, scope) ?? limited(key!.id);
      if (refused === null) request.apiKey = key;
      done(refused ?? undefined);
    };
    // A key seen lately is checked from memory; only a miss waits for the store.
    const cached = keys.verifyCached(token);
    if (cached !== undefined) {
      admit(cached);
      return;
    }
    // A store that fails rejects: the error handler answers it 503 (http/errors.ts).
    keys.verify(token).then(admit, (error: unknown) => done(error as Error));
  };
}
