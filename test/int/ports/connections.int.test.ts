/**
 * Port conformance: `ConnectionStore` (OAuth connections, authorize states), on SQLite and on
 * PostgreSQL (backends.ts). Token values are opaque to the store: it keeps what it is given.
 */

import type { AsyncStores, NewConnection, SealedTokens, StateRow } from '../../../src/core/ports';
import { event, failure, forEachStore, UNIQUE, user } from './backends';

const conn = (id: string, over: Partial<NewConnection> = {}): NewConnection => ({
  id,
  platform: 'slack',
  kind: 'user',
  userId: 'ana',
  externalId: `ext-${id}`,
  workspaceId: 'T1',
  accessToken: `v1.k.iv.tag.access-${id}`,
  refreshToken: `v1.k.iv.tag.refresh-${id}`,
  tokenType: 'Bearer',
  expiresAt: 10_000,
  refreshExpiresAt: null,
  scopes: ['users:read'],
  ...over,
});

const state = (hash: string, expiresAt: number, verifier: string | null = null): StateRow => ({
  state_hash: hash,
  platform: 'slack',
  user_id: 'ana',
  redirect_uri: 'http://127.0.0.1/cb',
  code_verifier: verifier,
  created_at: 1,
  expires_at: expiresAt,
});

async function withUsers(open: () => Promise<AsyncStores>): Promise<AsyncStores> {
  const s = await open();
  await s.presence.write([user('ana'), user('bo')]);
  return s;
}

forEachStore('ConnectionStore', (backend) => {
  it('inserts connections and finds them by id, account and filter, oldest first', async () => {
    const s = await withUsers(backend.open);
    const c = s.connections;
    await c.insert(conn('c2'), 20);
    await c.insert(conn('c1', { userId: 'bo', platform: 'teams', scopes: null }), 20);
    await c.insert(conn('c3', { kind: 'app', userId: null, platform: 'zoom', refreshToken: null }), 10);
    const row = await c.get('c2');
    expect(row).toEqual({
      connection_id: 'c2',
      platform: 'slack',
      kind: 'user',
      user_id: 'ana',
      external_id: 'ext-c2',
      workspace_id: 'T1',
      scopes: '["users:read"]',
      access_token: 'v1.k.iv.tag.access-c2',
      refresh_token: 'v1.k.iv.tag.refresh-c2',
      token_type: 'Bearer',
      expires_at: 10_000,
      refresh_expires_at: null,
      health: 'ok',
      last_error: null,
      last_error_at: null,
      retry_at: null,
      failures: 0,
      refreshed_at: 20,
      expiry_warned_at: null,
      created_at: 20,
      updated_at: 20,
    });
    expect(await c.get('none')).toBeNull();
    expect((await c.findByAccount('teams', 'user', 'T1', 'ext-c1'))?.connection_id).toBe('c1');
    expect(await c.findByAccount('teams', 'app', 'T1', 'ext-c1')).toBeNull();
    expect((await c.get('c1'))?.scopes).toBe('[]');
    const ids = async (f?: Parameters<typeof c.list>[0]) => (await c.list(f)).map((r) => r.connection_id);
    expect(await ids()).toEqual(['c3', 'c1', 'c2']);
    expect(await ids({ userId: 'ana' })).toEqual(['c2']);
    expect(await ids({ kind: 'app' })).toEqual(['c3']);
    expect(await ids({ platform: 'teams', userId: 'bo' })).toEqual(['c1']);
    expect(await failure(c.insert(conn('c9', { externalId: 'ext-c2' }), 30))).toMatch(UNIQUE);
  });

  it('replaces a grant, saves refreshes, sets health, marks warnings, deletes', async () => {
    const s = await withUsers(backend.open);
    const c = s.connections;
    await c.insert(conn('c1', { refreshExpiresAt: 50_000 }), 1);
    await c.setHealth('c1', { health: 'error', lastError: 'HTTP 500', retryAt: 99, failures: 2 }, 5);
    let row = (await c.get('c1'))!;
    expect([
      row.health,
      row.last_error,
      row.last_error_at,
      row.retry_at,
      row.failures,
      row.updated_at,
    ]).toEqual(['error', 'HTTP 500', 5, 99, 2, 5]);
    const refreshed: SealedTokens = {
      accessToken: 'sealed-a2',
      refreshToken: 'sealed-r2',
      tokenType: null,
      expiresAt: 20_000,
      refreshExpiresAt: null,
      scopes: null,
    };
    expect(await c.saveRefreshed('c1', refreshed, 6)).toBe(true);
    expect(await c.saveRefreshed('none', refreshed, 6)).toBe(false);
    row = (await c.get('c1'))!;
    // Null fields other than the tokens keep what is stored.
    expect(row).toMatchObject({
      access_token: 'sealed-a2',
      refresh_token: 'sealed-r2',
      token_type: 'Bearer',
      expires_at: 20_000,
      refresh_expires_at: 50_000,
      scopes: '["users:read"]',
      health: 'ok',
      last_error: null,
      last_error_at: null,
      retry_at: null,
      failures: 0,
      refreshed_at: 6,
    });
    await c.markExpiryWarned('c1', 7);
    expect((await c.get('c1'))?.expiry_warned_at).toBe(7);
    await c.replaceGrant('c1', 'bo', { ...refreshed, accessToken: 'sealed-a3', scopes: ['a', 'b'] }, 8);
    row = (await c.get('c1'))!;
    expect(row).toMatchObject({
      user_id: 'bo',
      access_token: 'sealed-a3',
      token_type: null,
      refresh_expires_at: null,
      scopes: '["a","b"]',
      expiry_warned_at: null,
      refreshed_at: 8,
    });
    await c.setHealth('c1', { health: 'revoked', lastError: null, retryAt: null, failures: 0 }, 9);
    expect((await c.get('c1'))?.last_error_at).toBeNull();
    expect(await c.delete('c1')).toBe(true);
    expect(await c.delete('c1')).toBe(false);
  });

  it('finds connections expiring, and grants ending unwarned, before a horizon', async () => {
    const s = await withUsers(backend.open);
    const c = s.connections;
    await c.insert(conn('soon', { expiresAt: 100 }), 1);
    await c.insert(conn('later', { expiresAt: 500 }), 1);
    await c.insert(conn('never', { expiresAt: null, refreshToken: null }), 1);
    await c.insert(conn('broken', { expiresAt: 50 }), 1);
    await c.setHealth('broken', { health: 'reauth_required', lastError: 'x', retryAt: null, failures: 1 }, 2);
    // Refresh token with an end date: the grant ends with the later of the two.
    await c.insert(conn('rt', { expiresAt: 300, refreshExpiresAt: 200, platform: 'zoom' }), 1);
    // No refresh token: the grant ends with the access token.
    await c.insert(conn('nort', { expiresAt: 150, refreshToken: null, platform: 'zoom' }), 1);
    // A refresh token without an end date never ends by itself.
    await c.insert(conn('open', { expiresAt: 10, refreshExpiresAt: null, platform: 'zoom' }), 1);
    expect((await c.expiringBefore(500)).map((r) => r.connection_id)).toEqual([
      'open',
      'soon',
      'nort',
      'rt',
      'later',
    ]);
    const unwarned = async (h: number) =>
      (await c.unwarnedEndingBefore(['zoom'], h)).map((r) => r.connection_id).sort();
    expect(await unwarned(299)).toEqual(['nort']);
    expect(await unwarned(300)).toEqual(['nort', 'rt']);
    await c.markExpiryWarned('nort', 3);
    expect(await unwarned(300)).toEqual(['rt']);
    expect(await c.unwarnedEndingBefore([], 1_000)).toEqual([]);
  });

  it('takes an authorize state once, purges expired ones', async () => {
    const s = await withUsers(backend.open);
    const c = s.connections;
    await c.insertState(state('h1', 100, 'sealed-verifier'));
    await c.insertState(state('h2', 200));
    await c.insertState(state('h3', 300));
    expect(await c.takeState('h1')).toEqual(state('h1', 100, 'sealed-verifier'));
    expect(await c.takeState('h1')).toBeNull();
    expect(await c.purgeStates(200)).toBe(1);
    expect(await c.takeState('h2')).toBeNull();
    expect((await c.takeState('h3'))?.expires_at).toBe(300);
  });

  it('lists every sealed cell and rewrites one', async () => {
    const s = await withUsers(backend.open);
    const c = s.connections;
    await c.insert(conn('c1'), 1);
    await c.insert(conn('c2', { refreshToken: null }), 1);
    await c.insertState(state('h1', 100, 'sealed-v'));
    await c.insertState(state('h2', 100));
    const cells = (await c.sealedCells()).map((x) => `${x.table}.${x.column}:${x.key}=${x.value}`).sort();
    expect(cells).toEqual([
      'connections.access_token:c1=v1.k.iv.tag.access-c1',
      'connections.access_token:c2=v1.k.iv.tag.access-c2',
      'connections.refresh_token:c1=v1.k.iv.tag.refresh-c1',
      'oauth_states.code_verifier:h1=sealed-v',
    ]);
    await c.writeCell({ table: 'connections', column: 'refresh_token', key: 'c1', value: 'old' }, 'resealed');
    await c.writeCell(
      { table: 'oauth_states', column: 'code_verifier', key: 'h1', value: 'old' },
      'resealed-v',
    );
    expect((await c.get('c1'))?.refresh_token).toBe('resealed');
    expect((await c.takeState('h1'))?.code_verifier).toBe('resealed-v');
  });

  it('a transaction commits its writes together, or none of them when it throws', async () => {
    const s = await withUsers(backend.open);
    const c = s.connections;
    await c.transaction(async (tx) => {
      await c.insert(conn('c1'), 1, tx);
      await c.insertState(state('h1', 100), tx);
      expect((await c.get('c1', tx))?.connection_id).toBe('c1');
    });
    await expect(
      c.transaction(async (tx) => {
        await c.insert(conn('c2'), 1, tx);
        await c.delete('c1', tx);
        await s.webhooks.insertOutbox(tx, [event('msg_c', 'connection.revoked', 'ana', null, 1, '{}')], []);
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect((await c.list()).map((r) => r.connection_id)).toEqual(['c1']);
    expect((await c.takeState('h1'))?.state_hash).toBe('h1');
    expect(await c.transaction(() => 42)).toBe(42);
  });

  it('cascades a deleted user to their connections and states', async () => {
    const s = await withUsers(backend.open);
    await s.connections.insert(conn('c1'), 1);
    await s.connections.insert(conn('c2', { userId: 'bo' }), 1);
    await s.connections.insertState(state('h1', 100));
    await s.presence.deleteUser('ana');
    expect((await s.connections.list()).map((r) => r.connection_id)).toEqual(['c2']);
    expect(await s.connections.takeState('h1')).toBeNull();
  });
});
