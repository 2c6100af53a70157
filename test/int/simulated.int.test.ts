import { createHash } from 'node:crypto';
import { join } from 'node:path';

import { connectorContext } from '../../src/aggregator/connector-host';
import { silentLog, type Log } from '../../src/core/log';
import { Simulation, SimulatedWorld } from '../../connectors/simulated';
import { testEngine, tmpDir } from '../helpers/engine';
import { T0 } from '../helpers/observations';

describe('simulated platforms', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('is deterministic under a seed, whatever the step size', () => {
    const end = T0 + 3600_000;
    const digest = (events: unknown[]) => createHash('sha256').update(JSON.stringify(events)).digest('hex');
    const run = (stepMs: number, seed = 42) => {
      const w = new SimulatedWorld({ seed, users: 8, start: T0 });
      const out = [];
      for (let t = T0; t < end; t += stepMs) out.push(...w.advanceTo(t));
      out.push(...w.advanceTo(end));
      return { count: out.length, digest: digest(out) };
    };
    const fine = run(1000);
    expect(fine.count).toBeGreaterThan(500);
    expect(run(7919)).toEqual(fine);
    expect(run(end - T0)).toEqual(fine);
    expect(run(1000, 43).digest).not.toBe(fine.digest);
  });

  it("speaks each platform's own vocabulary", () => {
    const w = new SimulatedWorld({ seed: 7, users: 12, start: T0 });
    const events = w.advanceTo(T0 + 8 * 3600_000);
    const teams = new Set(
      events.flatMap((e) => (e.kind === 'teams' ? [`${e.raw.availability}/${e.raw.activity}`] : [])),
    );
    expect([...teams]).toEqual(
      expect.arrayContaining([
        'Available/Available',
        'Busy/InAMeeting',
        'DoNotDisturb/Presenting',
        'Offline/Offline',
      ]),
    );
    const slack = new Set(events.flatMap((e) => (e.kind === 'slack' ? [e.raw.presence.presence] : [])));
    expect([...slack].sort()).toEqual(['active', 'away']);
    expect(events.some((e) => e.kind === 'slack' && e.raw.dnd?.dnd_enabled === true)).toBe(true);
    const discord = new Set(events.flatMap((e) => (e.kind === 'discord' ? [e.raw.status] : [])));
    expect([...discord]).toEqual(expect.arrayContaining(['online', 'idle', 'dnd', 'offline']));
    expect(events.some((e) => e.kind === 'discord' && e.raw.client_status?.mobile !== undefined)).toBe(true);
    const zoom = new Set(events.flatMap((e) => (e.kind === 'zoom' ? [e.raw.presence_status] : [])));
    expect([...zoom]).toEqual(
      expect.arrayContaining(['Available', 'In_Meeting', 'Do_Not_Disturb', 'Offline']),
    );
    expect(events.some((e) => e.kind === 'whatsapp')).toBe(true);
    expect(events.some((e) => e.kind === 'heartbeat')).toBe(true);
    expect(events.some((e) => (e.kind as string) === 'linkedin')).toBe(false);
  });

  it('drives the engine through the real mappers: every value known, presence changing, LinkedIn silent', async () => {
    const t = await testEngine(join(tmp.dir, 'sim.db'));
    const warnings: object[] = [];
    const log: Log = { ...silentLog, warn: (o) => warnings.push(o) };
    const sim = new Simulation({ seed: 3, users: 12, start: t.clock.now() }, t.clock);
    for (const p of sim.world.people) {
      await t.engine.putUser(p.userId, { displayName: p.displayName });
      for (const a of p.accounts) await t.engine.linkAccount(p.userId, a);
    }
    for (const c of Object.values(sim.connectors))
      await c.start(connectorContext(t.engine, c.descriptor, log));
    const heartbeat = (hb: {
      userId: string;
      deviceId: string;
      status: 'online';
      activity: null;
      ttlMs: number;
    }) => t.engine.heartbeat(hb.userId, hb.deviceId, hb.status, hb.activity, hb.ttlMs);
    const seen = new Set<string>();
    for (let i = 0; i < 240; i++) {
      t.clock.advance(15_000);
      const sightings = await sim.step((hb) => heartbeat(hb as Parameters<typeof heartbeat>[0]));
      for (const s of sightings) seen.add(s.platform);
      await t.engine.sweep();
    }
    expect(warnings).toEqual([]);
    expect([...seen].sort()).toEqual(['discord', 'slack', 'teams', 'whatsapp', 'zoom']);
    const alice = t.engine.get('alice')!;
    expect(alice.version).toBeGreaterThan(3);
    expect(Object.keys(alice.platforms)).toEqual(
      expect.arrayContaining(['slack', 'teams', 'discord', 'zoom']),
    );
    expect(alice.platforms.linkedin).toBeUndefined();
    const statuses = new Set((await t.engine.history('alice', { limit: 500 })).map((h) => h.toStatus));
    expect(statuses.size).toBeGreaterThan(2);
    expect(sim.connectors.linkedin.health().state).toBe('ok');
    t.close();
  });
});
