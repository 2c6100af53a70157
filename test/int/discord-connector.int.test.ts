/**
 * The Discord connector end to end: the real discord.js client, pointed at the loopback fake
 * Discord (REST + gateway), feeding a running service read over HTTP. Nothing of discord.js is
 * mocked. Change events are read from a sink on `engine.changes` (the webhook outbox hangs off the same
 * commit). Failures and backoff are in discord-failures.int.test.ts.
 */

import { webhookTap } from '../helpers/webhook-tap';
import { FakeClock, systemClock } from '../../src/core/clock';
import {
  ALICE,
  BOB,
  CAROL,
  GUILD,
  INTENTS,
  discordRig,
  waitFor,
  type DiscordRig,
} from '../helpers/fake-discord';

describe('Discord connector against the real discord.js client', () => {
  let r: DiscordRig;
  afterEach(async () => {
    await r?.close();
  });

  it('reports the initial GUILD_CREATE presences of linked users only, devices and all', async () => {
    r = await discordRig();
    await waitFor(() => r.connector.health().state === 'ok', 60_000, 'the session to be ready');
    await waitFor(() => r.connector.stats.reports >= 2, 60_000, 'the initial reports');

    // What the client sent: the bot token and Guilds | GuildMembers | GuildPresences (259).
    expect(r.fake.identifies).toHaveLength(1);
    expect(r.fake.identifies[0]).toMatchObject({
      token: r.fake.token,
      intents: INTENTS.Guilds | INTENTS.GuildMembers | INTENTS.GuildPresences,
    });
    expect(r.fake.restCalls).toEqual(['GET /api/v10/gateway/bot']);

    // dnd: busy + do_not_disturb in the manual tier, custom status from the type-4 activity.
    const alice = await r.presence('alice');
    expect(alice).toMatchObject({
      status: 'busy',
      activity: 'do_not_disturb',
      source: 'manual',
      custom_status: { text: 'deep work', emoji: '🎧', expires_at: null },
      stale: false,
    });
    expect(alice.platforms.discord.raw).toMatchObject({
      status: 'dnd',
      client_status: { desktop: 'dnd' },
      activities: [
        { type: 0, name: 'Factorio' },
        { type: 4, state: 'deep work' },
      ],
    });
    expect(Object.keys(alice.platforms.discord.devices)).toEqual(['desktop']);
    expect(alice.platforms.discord.devices.desktop.status).toBe('busy');

    // client_status → one entry per device.
    const bob = await r.presence('bob');
    expect(bob).toMatchObject({ status: 'online', source: 'app', reachable_via: ['discord'] });
    expect(bob.platforms.discord.devices).toMatchObject({
      mobile: { status: 'online' },
      web: { status: 'idle' },
    });

    // Carol is a member but nobody linked her: nothing about her is kept.
    expect(r.svc.engine.userCount).toBe(2);
    expect(r.connector.stats.reports).toBe(2);

    const status = await r.connectorStatus();
    expect(status).toMatchObject({ enabled: true, mode: 'gateway', health: 'ok', last_error: null });
    expect(typeof status.last_success_at).toBe('string');
  });

  it('moves the aggregate on PRESENCE_UPDATE and each change is committed once', async () => {
    r = await discordRig();
    const tap = await webhookTap(r.svc, systemClock);
    await waitFor(() => r.connector.stats.reports >= 2, 60_000, 'the initial reports');
    const before = (await r.presence('bob')).version;

    r.fake.presenceUpdate(GUILD, { userId: BOB, status: 'idle', client_status: { desktop: 'idle' } });
    await waitFor(() => r.changes.some((c) => c.userId === 'bob' && c.current.status === 'idle'));
    let bob = await r.presence('bob');
    expect(bob).toMatchObject({ status: 'idle', version: before + 1 });
    // The devices Discord no longer lists are ended at once, not left to run out their TTL.
    const devices = bob.platforms.discord.devices;
    expect(devices.desktop.status).toBe('idle');
    expect(Date.parse(devices.desktop.expires_at)).toBeGreaterThan(systemClock.now());
    for (const gone of ['mobile', 'web'])
      expect(Date.parse(devices[gone].expires_at)).toBeLessThanOrEqual(
        Date.parse(devices.desktop.observed_at),
      );

    // dnd with a custom status: busy/do_not_disturb, manual tier, custom_status set.
    r.fake.presenceUpdate(GUILD, {
      userId: BOB,
      status: 'dnd',
      client_status: { mobile: 'dnd' },
      activities: [{ type: 4, name: 'Custom Status', state: 'on call', created_at: 2 }],
    });
    await waitFor(() => r.changes.some((c) => c.userId === 'bob' && c.current.status === 'busy'));
    bob = await r.presence('bob');
    expect(bob).toMatchObject({
      status: 'busy',
      activity: 'do_not_disturb',
      source: 'manual',
      custom_status: { text: 'on call', emoji: null },
    });
    const change = r.changes.find((c) => c.userId === 'bob' && c.current.status === 'busy')!;
    expect(change.changed).toEqual(expect.arrayContaining(['status', 'activity', 'custom_status']));
    expect(change.cause).toBe('discord');

    // An unlinked member's update changes nothing.
    const n = r.changes.length;
    r.fake.presenceUpdate(GUILD, { userId: CAROL, status: 'idle' });
    r.fake.presenceUpdate(GUILD, { userId: ALICE, status: 'online', client_status: { web: 'online' } });
    await waitFor(() => r.changes.some((c) => c.userId === 'alice' && c.current.status === 'online'));
    expect(r.changes.slice(n).map((c) => c.userId)).toEqual(['alice']);
    expect(r.svc.engine.userCount).toBe(2);

    // A status the mapping does not know is never guessed: alice keeps what she had.
    const aliceBefore = await r.presence('alice');
    r.fake.presenceUpdate(GUILD, { userId: ALICE, status: 'streaming' });
    r.fake.presenceUpdate(GUILD, { userId: BOB, status: 'online', client_status: { mobile: 'online' } });
    await waitFor(() => r.changes.some((c) => c.userId === 'bob' && c.current.status === 'online'));
    expect(await r.presence('alice')).toMatchObject({ status: 'online', version: aliceBefore.version });

    // Offline: the status follows and no device is left live.
    r.fake.presenceUpdate(GUILD, { userId: BOB, status: 'offline' });
    await waitFor(() => r.changes.some((c) => c.userId === 'bob' && c.current.status === 'offline'));
    bob = await r.presence('bob');
    expect(bob.status).toBe('offline');
    expect(bob.reachable_via).toEqual([]);
    // Each of bob's changes went out as a signed presence.changed webhook, in order.
    await tap.until((events) =>
      events.some((e) => e.data.user_id === 'bob' && e.data.current.status === 'offline'),
    );
    expect(tap.statusesOf('bob').slice(-4)).toEqual(['idle', 'busy', 'online', 'offline']);
    await tap.close();
  });

  it('refreshes while connected; when the gateway is gone the reports lapse; after a drop it resumes', async () => {
    // Presence time is a FakeClock, so the TTL lapses only when the test says; the refresh timer
    // (every 200 ms of real time) re-reports at whatever the clock says then.
    const clock = new FakeClock();
    r = await discordRig({ clock, connector: { ttlMs: 1200, refreshMs: 200, maxReconnects: 1000 } });
    await waitFor(() => r.connector.stats.reports >= 2, 60_000, 'the initial reports');
    const expiresAt = (): number => Date.parse(r.svc.engine.get('bob')?.platforms.discord?.expires_at ?? '');
    for (let i = 0; i < 2; i++) {
      // 0.8 s on, twice: past the first reports' TTL, so only refreshes can keep bob online.
      clock.advance(800);
      await waitFor(() => expiresAt() === clock.now() + 1200, 60_000, 'a refresh at the new time');
    }
    expect(await r.presence('bob')).toMatchObject({ status: 'online', stale: false });

    // An outage: the connection drops and new ones are refused, so discord.js keeps retrying.
    r.fake.refuseConnections = true;
    r.fake.drop();
    await waitFor(() => r.connector.health().state === 'degraded', 60_000, 'degraded health');
    clock.advance(1600); // longer than the TTL, with nothing refreshed meanwhile
    const lapsed = await r.presence('bob');
    expect(lapsed.status).toBe('offline');
    expect(lapsed.stale).toBe(true);

    // A change while we were away is replayed on RESUME.
    r.fake.presenceUpdate(GUILD, { userId: BOB, status: 'idle', client_status: { mobile: 'idle' } });
    r.fake.refuseConnections = false;
    await waitFor(() => r.connector.health().state === 'ok', 60_000, 'the session to come back');
    await waitFor(() => r.changes.some((c) => c.userId === 'bob' && c.current.status === 'idle'));
    expect(await r.presence('bob')).toMatchObject({ status: 'idle', stale: false });
    expect(r.fake.resumes.at(-1)).toMatchObject({ ok: true });
    expect(r.fake.identifies).toHaveLength(1); // resumed, not a new session

    // And live updates flow again on the resumed session.
    const n = r.changes.length;
    r.fake.presenceUpdate(GUILD, { userId: BOB, status: 'online', client_status: { web: 'online' } });
    await waitFor(() => r.changes.slice(n).some((c) => c.userId === 'bob' && c.current.status === 'online'));
    expect((await r.presence('bob')).platforms.discord.devices.web.status).toBe('online');
  });

  it('a new session after one could not be resumed: who is missing from GUILD_CREATE went offline', async () => {
    r = await discordRig({ connector: { identify: { minGapMs: 100 } } });
    await waitFor(() => r.connector.stats.reports >= 2, 60_000, 'the initial reports');
    expect((await r.presence('alice')).status).toBe('busy');

    // The session ends for good (Discord restarted); meanwhile alice went offline.
    r.fake.guilds[0]!.presences = r.fake.guilds[0]!.presences.filter((p) => p.userId !== ALICE);
    r.fake.closeAll(4000, 'Unknown error', true);
    await waitFor(() => r.fake.identifies.length === 2, 60_000, 'a new IDENTIFY');
    await waitFor(() => r.changes.some((c) => c.userId === 'alice' && c.current.status === 'offline'));
    const alice = await r.presence('alice');
    expect(alice).toMatchObject({ status: 'offline', custom_status: null });
    expect(alice.platforms.discord.raw).toMatchObject({ status: 'offline' });
    expect((await r.presence('bob')).status).toBe('online');
    expect(r.connector.health().state).toBe('ok');
  });
});
