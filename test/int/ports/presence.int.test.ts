/**
 * Port conformance: `PresenceStore`, on SQLite and on PostgreSQL (backends.ts).
 */

import type { AggregateRecord, TransitionRecord, WriteOp } from '../../../src/core/ports';
import type { Observation } from '../../../src/core/presence';
import { event, forEachStore, loadAll, user } from './backends';

const obs = (over: Partial<Observation> = {}): Observation => ({
  platform: 'slack',
  device: '',
  status: 'online',
  activity: null,
  customStatus: { text: 'Lunch', emoji: ':pizza:', expiresAt: null },
  source: 'app',
  raw: { presence: 'active', nested: ['ünïcode', 1] },
  label: 'active',
  decay: null,
  observedAt: 1_700_000_000_000,
  changedAt: 1_700_000_000_000,
  expiresAt: 1_700_000_600_000,
  ...over,
});

const aggregate = (version: number, over: Partial<AggregateRecord> = {}): AggregateRecord => ({
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  version,
  lastActiveAt: 1_700_000_000_000,
  updatedAt: 1_700_000_000_000 + version,
  ...over,
});

const transition = (userId: string, version: number, at: number): TransitionRecord => ({
  userId,
  version,
  at,
  fromStatus: 'offline',
  toStatus: 'online',
  fromActivity: null,
  toActivity: 'in_call',
  source: 'app',
  platform: 'slack',
});

forEachStore('PresenceStore', (backend) => {
  it('stores what the engine writes and loads it back as written', async () => {
    const s = await backend.open();
    const inferred = obs({
      platform: 'whatsapp',
      source: 'inferred',
      customStatus: null,
      decay: [
        { status: 'online', untilMs: 60_000 },
        { status: 'idle', untilMs: 600_000 },
      ],
    });
    const ops: WriteOp[] = [
      user('ana', 5),
      user('bo', 6),
      { op: 'observation', userId: 'ana', obs: obs() },
      { op: 'observation', userId: 'ana', obs: obs({ platform: 'device', device: 'laptop', raw: null }) },
      { op: 'observation', userId: 'bo', obs: inferred },
      {
        op: 'override',
        userId: 'ana',
        override: { status: 'busy', activity: 'focus', customStatus: null, setAt: 10, expiresAt: 20 },
      },
      { op: 'aggregate', userId: 'ana', aggregate: aggregate(1, { activity: 'in_call' }) },
      { op: 'transition', transition: transition('ana', 1, 100) },
    ];
    await s.presence.write(ops);
    const loaded = (await loadAll(s)).sort((a, b) => a.user.userId.localeCompare(b.user.userId));
    expect(loaded).toHaveLength(2);
    const [ana, bo] = loaded;
    expect(ana!.user).toEqual({
      userId: 'ana',
      displayName: null,
      timezone: null,
      createdAt: 5,
      updatedAt: 5,
    });
    expect(ana!.observations.sort((a, b) => a.device.localeCompare(b.device))).toEqual([
      obs(),
      obs({ platform: 'device', device: 'laptop', raw: null }),
    ]);
    expect(ana!.override).toEqual({
      status: 'busy',
      activity: 'focus',
      customStatus: null,
      setAt: 10,
      expiresAt: 20,
    });
    expect(ana!.aggregate).toEqual(aggregate(1, { activity: 'in_call' }));
    expect(ana!.accounts).toEqual([]);
    expect(bo!.observations).toEqual([inferred]);
    expect(bo!.override).toBeNull();
    expect(bo!.aggregate).toBeNull();
  });

  it('upserts users and observations, deletes observations and overrides, applies refreshes', async () => {
    const s = await backend.open();
    await s.presence.write([
      user('ana'),
      { op: 'observation', userId: 'ana', obs: obs() },
      { op: 'observation', userId: 'ana', obs: obs({ platform: 'teams' }) },
      {
        op: 'override',
        userId: 'ana',
        override: { status: 'away', activity: null, customStatus: null, setAt: 1, expiresAt: 2 },
      },
      { op: 'aggregate', userId: 'ana', aggregate: aggregate(1) },
    ]);
    await s.presence.write([
      {
        op: 'user',
        user: { userId: 'ana', displayName: 'Ana', timezone: 'Europe/Paris', createdAt: 99, updatedAt: 7 },
      },
      { op: 'observation', userId: 'ana', obs: obs({ status: 'busy', activity: 'in_meeting' }) },
      { op: 'observation-delete', userId: 'ana', platform: 'teams', device: '' },
      { op: 'override', userId: 'ana', override: null },
      {
        op: 'refresh',
        userId: 'ana',
        observations: [obs({ status: 'busy', activity: 'in_meeting', observedAt: 5_000, expiresAt: 9_000 })],
        lastActiveAt: 4_242,
      },
    ]);
    const [ana] = await loadAll(s);
    // The insert's created_at stays; the rest is the update's.
    expect(ana!.user).toEqual({
      userId: 'ana',
      displayName: 'Ana',
      timezone: 'Europe/Paris',
      createdAt: 1,
      updatedAt: 7,
    });
    expect(ana!.observations).toEqual([
      obs({ status: 'busy', activity: 'in_meeting', observedAt: 5_000, expiresAt: 9_000 }),
    ]);
    expect(ana!.override).toBeNull();
    expect(ana!.aggregate?.lastActiveAt).toBe(4_242);
    expect(await s.presence.getUser('ana')).toEqual(ana!.user);
    expect(await s.presence.getUser('nobody')).toBeNull();
  });

  it('applies the ops of one write in order, the same row several times included', async () => {
    const s = await backend.open();
    const override = { status: 'busy' as const, activity: null, customStatus: null, setAt: 1, expiresAt: 2 };
    await s.presence.write([
      user('ana', 1),
      { op: 'observation', userId: 'ana', obs: obs({ status: 'idle' }) },
      { op: 'observation-delete', userId: 'ana', platform: 'slack', device: '' },
      { op: 'observation', userId: 'ana', obs: obs({ status: 'away' }) },
      { op: 'observation', userId: 'ana', obs: obs({ platform: 'zoom' }) },
      { op: 'observation-delete', userId: 'ana', platform: 'zoom', device: '' },
      { op: 'override', userId: 'ana', override },
      { op: 'override', userId: 'ana', override: null },
      { op: 'override', userId: 'ana', override: { ...override, status: 'away' } },
      { op: 'aggregate', userId: 'ana', aggregate: aggregate(1) },
      { op: 'aggregate', userId: 'ana', aggregate: aggregate(2, { status: 'away' }) },
      {
        op: 'refresh',
        userId: 'ana',
        observations: [obs({ status: 'away', observedAt: 7, expiresAt: 8 })],
        lastActiveAt: 9,
      },
      { op: 'user', user: { userId: 'ana', displayName: 'Ana', timezone: null, createdAt: 5, updatedAt: 6 } },
    ]);
    const [ana] = await loadAll(s);
    expect(ana!.user).toEqual({
      userId: 'ana',
      displayName: 'Ana',
      timezone: null,
      createdAt: 1,
      updatedAt: 6,
    });
    expect(ana!.observations).toEqual([obs({ status: 'away', observedAt: 7, expiresAt: 8 })]);
    expect(ana!.override).toEqual({ ...override, status: 'away' });
    expect(ana!.aggregate).toEqual(aggregate(2, { status: 'away', lastActiveAt: 9 }));
  });

  it("keeps a report's raw value verbatim, key order included", async () => {
    const s = await backend.open();
    const raw = { zeta: 1, alpha: [1.5, 'x', null], ü: { b: true, a: false } };
    await s.presence.write([user('ana'), { op: 'observation', userId: 'ana', obs: obs({ raw }) }]);
    const [ana] = await loadAll(s);
    expect(JSON.stringify(ana!.observations[0]!.raw)).toBe(JSON.stringify(raw));
  });

  it('answers history newest first, within since/until, at most limit', async () => {
    const s = await backend.open();
    await s.presence.write([
      user('ana'),
      user('bo'),
      { op: 'transition', transition: transition('ana', 1, 100) },
      { op: 'transition', transition: transition('ana', 2, 200) },
      { op: 'transition', transition: transition('ana', 3, 200) },
      { op: 'transition', transition: transition('ana', 4, 300) },
      { op: 'transition', transition: transition('bo', 1, 150) },
    ]);
    const versions = async (q: { since?: number; until?: number; limit: number }) =>
      (await s.presence.history('ana', q)).map((t) => t.version);
    expect(await versions({ limit: 10 })).toEqual([4, 3, 2, 1]);
    expect(await versions({ since: 200, limit: 10 })).toEqual([4, 3, 2]);
    expect(await versions({ until: 200, limit: 2 })).toEqual([3, 2]);
    expect((await s.presence.history('bo', { limit: 5 }))[0]).toEqual(transition('bo', 1, 150));
  });

  it('links an account to one user only, and unlinks it', async () => {
    const s = await backend.open();
    await s.presence.write([user('ana'), user('bo')]);
    const slack = { platform: 'slack' as const, workspaceId: 'T1', externalId: 'U1' };
    const discord = { platform: 'discord' as const, workspaceId: '', externalId: '42' };
    expect(await s.presence.linkAccount('ana', slack, 10)).toEqual({ linked: true });
    expect(await s.presence.linkAccount('ana', slack, 11)).toEqual({ linked: true });
    expect(await s.presence.linkAccount('bo', slack, 12)).toEqual({ linked: false, ownerId: 'ana' });
    expect(await s.presence.linkAccount('ana', discord, 13)).toEqual({ linked: true });
    expect(await s.presence.accountsOf('ana')).toEqual([
      { ...discord, userId: 'ana', createdAt: 13 },
      { ...slack, userId: 'ana', createdAt: 10 },
    ]);
    const [ana] = (await loadAll(s)).filter((u) => u.user.userId === 'ana');
    expect(ana!.accounts).toHaveLength(2);
    expect(await s.presence.unlinkAccount('bo', slack)).toBe(false);
    expect(await s.presence.unlinkAccount('ana', slack)).toBe(true);
    expect(await s.presence.linkAccount('bo', slack, 14)).toEqual({ linked: true });
  });

  it('deletes a user with everything about them, running stage in the same transaction', async () => {
    const s = await backend.open();
    await s.presence.write([
      user('ana'),
      user('bo'),
      { op: 'observation', userId: 'ana', obs: obs() },
      { op: 'aggregate', userId: 'ana', aggregate: aggregate(1) },
      { op: 'transition', transition: transition('ana', 1, 100) },
    ]);
    await s.presence.linkAccount('ana', { platform: 'slack', workspaceId: 'T', externalId: 'U' }, 1);
    let stagedIn: unknown = null;
    expect(
      await s.presence.deleteUser('ana', async (tx) => {
        stagedIn = tx;
        await s.webhooks.insertOutbox(tx, [event('msg_1', 'user.deleted', 'ana', 1, 1, '{}')], []);
      }),
    ).toBe(true);
    expect(stagedIn).not.toBeNull();
    expect((await loadAll(s)).map((u) => u.user.userId)).toEqual(['bo']);
    expect(await s.presence.history('ana', { limit: 10 })).toEqual([]);
    expect(await s.presence.accountsOf('ana')).toEqual([]);
    expect(await s.presence.deleteUser('ana')).toBe(false);
    // The account is free again.
    expect(
      await s.presence.linkAccount('bo', { platform: 'slack', workspaceId: 'T', externalId: 'U' }, 2),
    ).toEqual({
      linked: true,
    });
  });

  it('a write whose stage throws leaves nothing: not the ops, not what stage wrote', async () => {
    const s = await backend.open();
    await s.presence.write([user('ana')]);
    await expect(
      s.presence.write([user('bo'), { op: 'observation', userId: 'ana', obs: obs() }], async (tx) => {
        await s.webhooks.insertOutbox(tx, [event('msg_x', 'presence.changed', 'ana', 1, 1, '{}')], []);
        throw new Error('sink refused');
      }),
    ).rejects.toThrow('sink refused');
    const users = await loadAll(s);
    expect(users.map((u) => u.user.userId)).toEqual(['ana']);
    expect(users[0]!.observations).toEqual([]);
    // The event's msg_id was not taken: writing it again succeeds.
    await s.presence.write([], async (tx) => {
      await s.webhooks.insertOutbox(tx, [event('msg_x', 'presence.changed', 'ana', 1, 1, '{}')], []);
    });
    await expect(s.presence.deleteUser('ana', () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(await s.presence.getUser('ana')).not.toBeNull();
  });

  it('loads listed users as loadAll does, leaving out ids without a user', async () => {
    const s = await backend.open();
    await s.presence.write([
      user('ana'),
      user('bo'),
      user('cy'),
      { op: 'observation', userId: 'ana', obs: obs() },
      { op: 'observation', userId: 'bo', obs: obs({ platform: 'device', device: 'phone' }) },
      { op: 'aggregate', userId: 'bo', aggregate: aggregate(4) },
      {
        op: 'override',
        userId: 'bo',
        override: { status: 'busy', activity: null, customStatus: null, setAt: 1, expiresAt: 2 },
      },
    ]);
    await s.presence.linkAccount('bo', { platform: 'slack', workspaceId: 'T1', externalId: 'U1' }, 5);
    const all = new Map((await loadAll(s)).map((u) => [u.user.userId, u]));
    const listed = [...(await s.presence.loadUsers(['bo', 'nobody', 'ana']))].sort((x, y) =>
      x.user.userId.localeCompare(y.user.userId),
    );
    expect(listed).toEqual([all.get('ana'), all.get('bo')]);
    expect(listed[1]).toMatchObject({ aggregate: { version: 4 }, override: { status: 'busy' } });
    expect([...(await s.presence.loadUsers([]))]).toEqual([]);
  });

  it('checks expected versions where several writers share them (PostgreSQL), ignores them on SQLite', async () => {
    const s = await backend.open();
    await s.presence.write([
      user('ana'),
      user('bo'),
      { op: 'aggregate', userId: 'ana', aggregate: aggregate(2) },
    ]);
    const told: (ReadonlySet<string> | undefined)[] = [];
    const ops: WriteOp[] = [
      { op: 'observation', userId: 'ana', obs: obs() },
      { op: 'aggregate', userId: 'ana', aggregate: aggregate(2) }, // made on version 1: stale
      { op: 'transition', transition: transition('ana', 2, 100) },
      { op: 'observation', userId: 'bo', obs: obs() },
      { op: 'aggregate', userId: 'bo', aggregate: aggregate(1) },
    ];
    const expected = new Map([
      ['ana', 1],
      ['bo', 0],
    ]);
    const stale = await s.presence.write(ops, (_tx, st) => void told.push(st), expected);
    const loaded = new Map((await loadAll(s)).map((u) => [u.user.userId, u]));
    expect(loaded.get('bo')).toMatchObject({ aggregate: { version: 1 } });
    expect(loaded.get('bo')!.observations).toHaveLength(1);
    if (backend.name === 'pg') {
      expect([...(stale ?? [])]).toEqual(['ana']);
      expect(told.map((t) => [...(t ?? [])])).toEqual([['ana']]);
      // Nothing of ana's ops was written.
      expect(loaded.get('ana')).toMatchObject({ observations: [], aggregate: { version: 2 } });
      expect(await s.presence.history('ana', { limit: 10 })).toEqual([]);
    } else {
      // One writer owns the versions: nothing is stale, everything applies.
      expect(stale === undefined || stale.size === 0).toBe(true);
      expect(loaded.get('ana')!.observations).toHaveLength(1);
      expect((await s.presence.history('ana', { limit: 10 })).map((t) => t.version)).toEqual([2]);
    }
  });

  it('probes with a throwaway commit that leaves the data as it was', async () => {
    const s = await backend.open();
    await s.presence.write([user('ana')]);
    await expect(s.presence.probe(123)).resolves.toBeUndefined();
    await expect(s.presence.probe(124)).resolves.toBeUndefined();
    expect((await loadAll(s)).map((u) => u.user.userId)).toEqual(['ana']);
  });
});
