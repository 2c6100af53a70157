/**
 * Slack with only `SLACK_SIGNING_SECRET` (no bot token, no OAuth connection), in the service as
 * `createService` builds it from the environment: verified `user_status_changed`,
 * `dnd_updated_user` and `user_huddle_changed` events for a linked account apply to that user
 * (custom status; DND as busy/do_not_disturb in the manual tier, ending when Slack says it
 * ends), and clearing them ends them. Nothing is ever polled.
 */

import { join } from 'node:path';

import { parseEnv } from '../../src/config/env';
import { FakeClock } from '../../src/core/clock';
import { createService, type Service } from '../../src/main';
import { tmpDir } from '../helpers/engine';
import { waitFor } from '../helpers/fake-discord';
import { SIGNING_SECRET, slackSign } from '../helpers/fake-slack';
import { sleep } from '../helpers/wait';

const TEAM = 'T0PUSH';
const MIN = 60_000;

describe('Slack without polling credentials (signing secret only)', () => {
  let svc: Service;
  let clock: FakeClock;
  let key: string;
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  beforeEach(async () => {
    clock = new FakeClock();
    svc = await createService(
      parseEnv({
        PRESENCE_DB: join(tmp.dir, `push-${Date.now()}-${Math.random()}.db`),
        LOG_LEVEL: 'silent',
        SLACK_SIGNING_SECRET: SIGNING_SECRET,
      }),
      // Timers on: the connectors are the ones the environment configures, as in `presence serve`.
      { clock, logger: false },
    );
    key = (await svc.keys.create(['read', 'write', 'admin'], 'push-test')).key;
    await svc.engine.putUser('alice', {});
    await svc.engine.linkAccount('alice', { platform: 'slack', workspaceId: TEAM, externalId: 'U0ALICE' });
  });
  afterEach(async () => {
    await svc.close();
  });

  const nowS = (): number => Math.floor(clock.now() / 1000);
  let seq = 0;
  const inbound = (event: object) => {
    seq += 1;
    const body = JSON.stringify({
      token: 'unused',
      team_id: TEAM,
      api_app_id: 'A0TEST',
      type: 'event_callback',
      event_id: `Ev0PUSH${seq}`,
      event_time: nowS(),
      event,
    });
    const ts = nowS();
    return svc.app.inject({
      method: 'POST',
      url: '/v1/inbound/slack',
      headers: {
        'content-type': 'application/json',
        'x-slack-request-timestamp': String(ts),
        'x-slack-signature': slackSign(SIGNING_SECRET, ts, body),
      },
      payload: body,
    });
  };
  const presence = async (): Promise<any> => {
    const res = await svc.app.inject({
      method: 'GET',
      url: '/v1/presence/alice',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(res.statusCode).toBe(200);
    return JSON.parse(res.body);
  };
  /** The route hands events over after its answer: wait until the presence shows it. */
  const eventually = async (check: (p: any) => boolean, what: string): Promise<any> => {
    let last: any = null;
    await waitFor(
      () => {
        last = svc.engine.get('alice');
        return check(last);
      },
      10_000,
      what,
    );
    return presence();
  };
  const dnd = (dnd_status: object, user = 'U0ALICE') => ({ type: 'dnd_updated_user', user, dnd_status });
  const profileEvent = (type: string, profile: object, user = 'U0ALICE') => ({
    type,
    user: { id: user, team_id: TEAM, name: 'alice', profile: { real_name: 'Alice', ...profile } },
    event_ts: `${nowS()}.000100`,
  });

  it('runs a push-only Slack connector, listed as such', async () => {
    const res = await svc.app.inject({
      method: 'GET',
      url: '/v1/connectors',
      headers: { authorization: `Bearer ${key}` },
    });
    const slack = JSON.parse(res.body).connectors.find((c: any) => c.platform === 'slack');
    expect(slack).toMatchObject({ enabled: true, mode: 'push' });
  });

  it('dnd_updated_user makes the linked user busy + do_not_disturb (manual) until next_dnd_end_ts', async () => {
    const end = nowS() + 3600;
    expect(
      (await inbound(dnd({ dnd_enabled: true, next_dnd_start_ts: nowS() - 60, next_dnd_end_ts: end })))
        .statusCode,
    ).toBe(200);
    const p = await eventually((v) => v.status === 'busy', 'DND applied');
    expect(p).toMatchObject({ status: 'busy', activity: 'do_not_disturb', source: 'manual' });
    expect(p.expires_at).toBe(new Date(end * 1000).toISOString());
    // Slack said when it ends; it ends then, by itself.
    clock.set(end * 1000);
    expect(await presence()).toMatchObject({ status: 'offline', activity: null });
  });

  it('a snooze ends at its snooze_endtime', async () => {
    const end = nowS() + 1800;
    await inbound(
      dnd({
        dnd_enabled: true,
        next_dnd_start_ts: 1,
        next_dnd_end_ts: 1,
        snooze_enabled: true,
        snooze_endtime: end,
      }),
    );
    await eventually((v) => v.activity === 'do_not_disturb', 'snooze applied');
    clock.set(end * 1000 - 1);
    expect((await presence()).activity).toBe('do_not_disturb');
    clock.set(end * 1000);
    expect((await presence()).activity).toBeNull();
  });

  it('user_status_changed shows the custom status (presence stays unknown), until it expires', async () => {
    const exp = nowS() + 900;
    await inbound(
      profileEvent('user_status_changed', {
        status_text: 'Lunch',
        status_emoji: ':taco:',
        status_expiration: exp,
      }),
    );
    const p = await eventually((v) => v.custom_status !== null, 'custom status applied');
    expect(p.custom_status).toEqual({
      text: 'Lunch',
      emoji: ':taco:',
      expires_at: new Date(exp * 1000).toISOString(),
    });
    // Slack pushes no presence: the status is never claimed, and the weakest tier carries it.
    expect(p).toMatchObject({ status: 'offline', source: 'inferred', reachable_via: [] });
    clock.set(exp * 1000);
    expect((await presence()).custom_status).toBeNull();
  });

  it('a custom status survives the end of DND; clearing both ends everything', async () => {
    await inbound(profileEvent('user_change', { status_text: 'Focus time', status_emoji: ':headphones:' }));
    await eventually((v) => v.custom_status !== null, 'custom status applied');
    const end = nowS() + 600;
    await inbound(dnd({ dnd_enabled: true, next_dnd_start_ts: nowS() - 1, next_dnd_end_ts: end }));
    let p = await eventually((v) => v.activity === 'do_not_disturb', 'DND applied');
    expect(p.custom_status).toMatchObject({ text: 'Focus time' });
    // At the end of DND the connector re-maps on its own: the custom status stays.
    clock.set(end * 1000 + 1);
    p = await eventually((v) => v.activity === null && v.custom_status !== null, 'back to the custom status');
    expect(p).toMatchObject({ status: 'offline', custom_status: { text: 'Focus time' } });
    // DND turned on again, then off early, and the status cleared.
    await inbound(dnd({ dnd_enabled: true, next_dnd_start_ts: nowS() - 1, next_dnd_end_ts: nowS() + 3600 }));
    await eventually((v) => v.activity === 'do_not_disturb', 'DND again');
    await inbound(dnd({ dnd_enabled: false, next_dnd_start_ts: 1, next_dnd_end_ts: 1 }));
    await eventually((v) => v.activity === null, 'DND off');
    await inbound(profileEvent('user_change', { status_text: '', status_emoji: '', status_expiration: 0 }));
    await eventually((v) => v.custom_status === null, 'status cleared');
    clock.advance(1);
    expect(await presence()).toMatchObject({
      status: 'offline',
      activity: null,
      custom_status: null,
      source: null,
    });
  });

  it('user_huddle_changed: in a huddle is busy + in_call', async () => {
    await inbound(
      profileEvent('user_huddle_changed', {
        huddle_state: 'in_a_huddle',
        huddle_state_expiration_ts: nowS() + 5 * 60,
      }),
    );
    const p = await eventually((v) => v.activity === 'in_call', 'huddle applied');
    expect(p).toMatchObject({ status: 'busy', activity: 'in_call', source: 'app' });
    await inbound(profileEvent('user_huddle_changed', { huddle_state: 'default_unset' }));
    await eventually((v) => v.activity === null, 'huddle over');
  });

  it('events about unlinked users, and malformed events, change nothing', async () => {
    const events: object[] = [
      dnd({ dnd_enabled: true, next_dnd_start_ts: nowS() - 60, next_dnd_end_ts: nowS() + 60 }, 'U0STRANGER'),
      dnd({ dnd_enabled: 'yes', next_dnd_start_ts: nowS() - 60, next_dnd_end_ts: nowS() + 60 }),
      dnd({ dnd_enabled: true, next_dnd_start_ts: 'now', next_dnd_end_ts: nowS() + 60 }),
      { type: 'dnd_updated_user', user: { id: 'U0ALICE' }, dnd_status: { dnd_enabled: true } },
      profileEvent('user_status_changed', { status_text: 42 }),
      profileEvent('user_huddle_changed', { huddle_state: ['in_a_huddle'] }),
      { type: 'user_change', user: 'U0ALICE' },
      { type: 'user_change', user: { id: 'U0ALICE', profile: 'busy' } },
    ];
    for (const e of events) expect((await inbound(e)).statusCode).toBe(200);
    // The route hands events over after answering; a valid one last shows they have all run.
    await inbound(profileEvent('user_change', { status_text: 'marker' }));
    await eventually((v) => v.custom_status?.text === 'marker', 'marker applied');
    expect(svc.engine.get('alice')).toMatchObject({ status: 'offline', activity: null, version: 1 });
    expect(svc.engine.state('alice')?.source).toBe('inferred');
  });

  it('stays healthy with nothing to poll', async () => {
    // No token, no API URL: were anything polled it would fail and say so in the health line.
    await inbound(dnd({ dnd_enabled: true, next_dnd_start_ts: nowS() - 60, next_dnd_end_ts: nowS() + MIN }));
    await eventually((v) => v.status === 'busy', 'DND applied');
    // The push is counted when its response has gone out (an onResponse hook), which can come
    // after the event itself is applied: until then the connector is 'pending', not unhealthy.
    const slackHealth = async (): Promise<any> => {
      const res = await svc.app.inject({
        method: 'GET',
        url: '/v1/connectors',
        headers: { authorization: `Bearer ${key}` },
      });
      return JSON.parse(res.body).connectors.find((c: any) => c.platform === 'slack');
    };
    let slack = await slackHealth();
    for (let i = 0; i < 500 && slack.health === 'pending'; i += 1) {
      await sleep(20);
      slack = await slackHealth();
    }
    expect(slack).toMatchObject({ health: 'ok', last_error: null });
  });
});
