/**
 * `presence serve` with DISCORD_BOT_TOKEN, as a real process: the real discord.js client inside
 * the shipped bin connects to the loopback fake Discord (REST + gateway), and a PRESENCE_UPDATE
 * moves a linked user's presence, read over HTTP, with a signed webhook to a loopback receiver.
 */

import { ALICE, FakeDiscord, GUILD, teamGuild } from '../helpers/fake-discord';
import { linkUser, startServe, until, webhookReceiver, type ServeProcess } from './serve-process';

jest.setTimeout(180_000);

describe('presence serve with the Discord connector configured', () => {
  let fake: FakeDiscord;
  let svc: ServeProcess | undefined;
  afterEach(async () => {
    await svc?.stop();
    await fake?.stop();
  });

  it('connects to the gateway and turns a PRESENCE_UPDATE into presence and a signed webhook', async () => {
    fake = await FakeDiscord.start({ guilds: [teamGuild()] });
    svc = await startServe({
      env: {
        DISCORD_BOT_TOKEN: fake.token,
        DISCORD_API_URL: fake.apiUrl,
        WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      },
    });
    const s = svc;
    const status = await until(async () => {
      const c = await s.connector('discord');
      return c.health === 'ok' ? c : null;
    }, 'the Discord connector to be ok');
    expect(status).toMatchObject({ enabled: true, mode: 'gateway', last_error: null });
    expect(typeof status.last_success_at).toBe('string');
    expect(fake.identifies.map((i) => i.token)).toEqual([fake.token]);

    const hooks = await webhookReceiver(s);
    try {
      await linkUser(s, 'alice', { platform: 'discord', external_id: ALICE });
      fake.presenceUpdate(GUILD, { userId: ALICE, status: 'idle', client_status: { mobile: 'idle' } });
      const presence = await until(async () => {
        const r = await s.api('GET', '/v1/presence/alice');
        return r.status === 200 && r.body.status === 'idle' ? r.body : null;
      }, 'alice to be idle');
      expect(presence).toMatchObject({ source: 'app', platforms: { discord: { status: 'idle' } } });
      expect(presence.platforms.discord.devices.mobile.status).toBe('idle');
      const event = await hooks.presenceChanged('alice', (c) => c.status === 'idle', 'alice idle');
      expect(event.data.current.platforms.discord.raw).toMatchObject({ status: 'idle' });
    } finally {
      await hooks.close();
    }
  });
});
