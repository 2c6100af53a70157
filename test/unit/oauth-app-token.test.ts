/**
 * @module test/unit/oauth-app-token
 * The in-memory app-grant cache alone: reuse until shortly before expiry, one request for
 * concurrent callers, a forced refresh, and failures that leave nothing cached.
 */

import { FakeClock } from '../../src/core/clock';
import { APP_TOKEN_REFRESH_MARGIN_MS, AppTokenCache } from '../../src/oauth/app-token';
import type { TokenSet } from '../../src/oauth/provider-client';

function rig(expiresInSec: number | null = 3600) {
  const clock = new FakeClock();
  let n = 0;
  let fail: Error | null = null;
  const request = jest.fn((): Promise<TokenSet> => {
    if (fail !== null) return Promise.reject(fail);
    n += 1;
    return Promise.resolve({
      accessToken: `t${n}`,
      refreshToken: null,
      tokenType: 'Bearer',
      expiresInSec,
      refreshExpiresInSec: null,
      scopes: null,
      response: {},
    });
  });
  const cache = new AppTokenCache(request, clock);
  return { clock, request, cache, failWith: (e: Error | null) => (fail = e) };
}

describe('app token cache', () => {
  it('reuses the token until the refresh margin before expiry, then fetches a new one', async () => {
    const r = rig(3600);
    expect(await r.cache.get()).toBe('t1');
    r.clock.advance(3600_000 - APP_TOKEN_REFRESH_MARGIN_MS - 1);
    expect(await r.cache.get()).toBe('t1');
    r.clock.advance(1);
    expect(await r.cache.get()).toBe('t2');
    expect(r.request).toHaveBeenCalledTimes(2);
  });

  it('shares one request between concurrent callers', async () => {
    const r = rig();
    const all = await Promise.all([r.cache.get(), r.cache.get(), r.cache.get({ force: true })]);
    expect(all).toEqual(['t1', 't1', 't1']);
    expect(r.request).toHaveBeenCalledTimes(1);
  });

  it('force drops a still-valid token and fetches a new one', async () => {
    const r = rig();
    expect(await r.cache.get()).toBe('t1');
    expect(await r.cache.get({ force: true })).toBe('t2');
    expect(await r.cache.get()).toBe('t2');
  });

  it('a failure is thrown to the caller and the next call asks again', async () => {
    const r = rig();
    r.failWith(new Error('refused'));
    await expect(r.cache.get()).rejects.toThrow('refused');
    r.failWith(null);
    expect(await r.cache.get()).toBe('t1');
  });

  it('without expires_in the token is kept for an hour', async () => {
    const r = rig(null);
    await r.cache.get();
    r.clock.advance(3600_000 - APP_TOKEN_REFRESH_MARGIN_MS - 1);
    await r.cache.get();
    expect(r.request).toHaveBeenCalledTimes(1);
  });
});
