import { join } from 'node:path';

import type { LoadedUser } from '../../src/core/ports';
import type { NormalizedState } from '../../src/core/presence';
import { storedRefreshes, testEngine, tmpDir } from '../helpers/engine';

const state = (fields: Partial<NormalizedState> = {}): NormalizedState => ({
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: { presence: 'active' },
  label: 'active',
  ...fields,
});

describe('loading the presence store', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('streams every user whole, page after page, with shared repeated values', async () => {
    const t = await testEngine(join(tmp.dir, 'load.db'));
    const e = t.engine;
    const ids = ['zed', 'amy', 'Émile', 'bob', 'carl', 'dee', 'eve'];
    for (const id of ids) e.ensureUser(id);
    await e.report('amy', { platform: 'slack', state: state(), ttlMs: 60_000 });
    await e.report('amy', {
      platform: 'device',
      device: 'phone',
      state: state({ status: 'busy', activity: 'in_call', label: 'busy' }),
      ttlMs: 60_000,
    });
    await e.report('bob', { platform: 'slack', state: state(), ttlMs: 60_000 });
    await e.report('Émile', {
      platform: 'teams',
      state: state({ customStatus: { text: 'Lunch', emoji: null, expiresAt: null } }),
      ttlMs: 60_000,
    });
    await e.setOverride('carl', {
      status: 'busy',
      activity: null,
      customStatus: null,
      expiresAt: t.clock.now() + 60_000,
    });
    await e.linkAccount('dee', { platform: 'slack', workspaceId: 'T1', externalId: 'U1' });
    await e.linkAccount('dee', { platform: 'discord', workspaceId: '', externalId: '42' });
    await e.linkAccount('zed', { platform: 'slack', workspaceId: 'T1', externalId: 'U9' });
    await e.flush();

    const byId = (users: Iterable<LoadedUser>) => new Map([...users].map((u) => [u.user.userId, u]));
    const whole = byId(t.store.loadAll());
    expect([...whole.keys()].sort()).toEqual([...ids].sort());
    // Pages of two users give the same users, a page boundary between a user's rows included.
    for (const size of [1, 2, 3]) expect(byId(t.store.loadAll(size))).toEqual(whole);

    const amy = whole.get('amy')!;
    expect(amy.observations.map((o) => [o.platform, o.device, o.status, o.activity])).toEqual([
      ['device', 'phone', 'busy', 'in_call'],
      ['slack', '', 'online', null],
    ]);
    expect(amy.aggregate).toMatchObject({ version: 1 });
    expect(whole.get('Émile')!.observations[0]!.customStatus).toEqual({
      text: 'Lunch',
      emoji: null,
      expiresAt: null,
    });
    expect(whole.get('carl')!.override).toMatchObject({ status: 'busy', expiresAt: t.clock.now() + 60_000 });
    expect(whole.get('carl')!.observations).toEqual([]);
    expect(
      whole
        .get('dee')!
        .accounts.map((a) => `${a.platform}/${a.workspaceId}/${a.externalId}`)
        .sort(),
    ).toEqual(['discord//42', 'slack/T1/U1']);
    expect(whole.get('zed')!.accounts).toEqual([{ platform: 'slack', workspaceId: 'T1', externalId: 'U9' }]);
    expect(whole.get('eve')).toMatchObject({
      observations: [],
      override: null,
      aggregate: null,
      accounts: [],
    });
    // Equal raw values are one object, not one per row.
    expect(amy.observations[1]!.raw).toBe(whole.get('bob')!.observations[0]!.raw);
    expect(amy.observations[1]!.raw).toEqual({ presence: 'active' });

    // What an engine loads from it answers as the first one did.
    const again = await t.reopen();
    for (const id of ids) expect(again.engine.get(id)).toEqual(e.get(id));
    again.close();
    t.close();
  });

  it('a deleted user leaves nothing in the packed refresh times', async () => {
    const t = await testEngine(join(tmp.dir, 'delete.db'));
    for (const id of ['ann', 'ben']) {
      await t.engine.heartbeat(id, 'laptop', 'online', null, 60_000);
      t.clock.advance(1000);
      await t.engine.heartbeat(id, 'laptop', 'online', null, 60_000);
    }
    expect(await t.engine.persistRefreshes()).toBe(2);
    expect([...storedRefreshes(t.db).keys()].sort()).toEqual(['ann', 'ben']);
    expect(await t.engine.deleteUser('ann')).toBe(true);
    expect([...storedRefreshes(t.db).keys()]).toEqual(['ben']);
    const raw = t.db.prepare('SELECT data FROM refresh_slots').pluck().all() as Buffer[];
    expect(raw.some((data) => data.includes('ann'))).toBe(false);
    t.close();
  });
});
