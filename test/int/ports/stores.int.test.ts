/**
 * Port conformance: the `Stores` aggregate (one transaction across the stores, readiness,
 * closing), on SQLite and on PostgreSQL (backends.ts).
 */

import { delivery, endpoint, event, forEachStore, user } from './backends';

forEachStore('Stores', (backend) => {
  it('one transaction spans the stores: all of it commits, or none of it when fn throws', async () => {
    const s = await backend.open();
    await s.presence.write([user('ana')]);
    await s.webhooks.saveEndpoint(
      endpoint('ep_1', { url: 'https://example.test/', events: null, sealedSecret: 'v1.s' }),
    );
    const connection = (id: string) => ({
      id,
      platform: 'teams',
      kind: 'user' as const,
      userId: 'ana',
      externalId: id,
      workspaceId: '',
      accessToken: 'v1.a',
      refreshToken: null,
      tokenType: null,
      expiresAt: null,
      refreshExpiresAt: null,
      scopes: null,
    });
    const write = (id: string, fail: boolean) =>
      s.transaction(async (tx) => {
        await s.connections.insert(connection(id), 1, tx);
        await s.connections.setHealth(
          id,
          { health: 'revoked', lastError: 'gone', retryAt: null, failures: 1 },
          2,
          tx,
        );
        const { seqs } = await s.webhooks.insertOutbox(
          tx,
          [event(`msg_${id}`, 'connection.revoked', 'ana', null, 2, '{}')],
          [delivery('ep_1', 0, 'k:teams', 2, 2, false, 2)],
        );
        if (fail) throw new Error('rolled back');
        return seqs[0]!;
      });
    await expect(write('c_bad', true)).rejects.toThrow('rolled back');
    expect(await s.connections.list()).toEqual([]);
    expect(await s.webhooks.loadPending('ep_1', 0, 10)).toEqual([]);
    const seq = await write('c_ok', false);
    expect((await s.connections.list()).map((c) => [c.connection_id, c.health])).toEqual([
      ['c_ok', 'revoked'],
    ]);
    expect((await s.webhooks.loadPending('ep_1', 0, 10)).map((d) => [d.event_seq, d.msg_id])).toEqual([
      [seq, 'msg_c_ok'],
    ]);
    // The failed transaction's msg_id was never stored.
    await expect(write('c_bad', false)).resolves.toBeGreaterThan(seq);
  });

  it('is ready while open and migrated, not after close', async () => {
    const s = await backend.open();
    expect(await s.ready()).toBe(true);
    await s.close();
    expect(await s.ready()).toBe(false);
    // Closing twice is harmless.
    await expect(s.close()).resolves.toBeUndefined();
  });
});
