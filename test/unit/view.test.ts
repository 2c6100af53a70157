import { Ladder } from '../../src/core/presence';
import { toPresence } from '../../src/normalizer/view';
import { T0, obs } from '../helpers/observations';

const ladder = new Ladder();
const now = T0 + 3000;

const user = (observations = [obs()], extra = {}) => ({
  userId: 'alice',
  observations,
  override: null,
  version: 7,
  lastActiveAt: T0,
  ...extra,
});

describe('toPresence', () => {
  it('builds the contract object with ISO times, version and per-platform entries', () => {
    const teams = obs({
      platform: 'teams',
      status: 'busy',
      activity: 'in_meeting',
      raw: { availability: 'Busy', activity: 'InAMeeting' },
      label: 'Busy/InAMeeting',
      observedAt: T0 + 3120 - 3000,
    });
    const slack = obs({
      platform: 'slack',
      status: 'away',
      customStatus: { text: 'Sprint review', emoji: ':spiral_calendar_pad:', expiresAt: null },
    });
    const p = toPresence(user([teams, slack]), now, ladder);
    expect(p).toMatchObject({
      user_id: 'alice',
      status: 'busy',
      activity: 'in_meeting',
      custom_status: { text: 'Sprint review', emoji: ':spiral_calendar_pad:', expires_at: null },
      source: 'app',
      observed_at: '2026-11-23T14:00:00.120Z',
      last_active_at: '2026-11-23T14:00:00.000Z',
      expires_at: '2026-11-23T14:05:00.120Z',
      stale: false,
      version: 7,
      reachable_via: [],
      override: null,
    });
    expect(p.platforms.teams).toEqual({
      status: 'busy',
      activity: 'in_meeting',
      source: 'app',
      raw: { availability: 'Busy', activity: 'InAMeeting' },
      observed_at: '2026-11-23T14:00:00.120Z',
      expires_at: '2026-11-23T14:05:00.120Z',
      stale: false,
      devices: {},
    });
    expect(p.explain).toBe(
      'teams reported Busy/InAMeeting (app tier) at 14:00:00; beats 1 other live report; no override',
    );
  });

  it('reachable_via lists platforms online or idle now, most present first', () => {
    const slack = obs({ platform: 'slack', status: 'idle' });
    const discord = obs({ platform: 'discord', status: 'online' });
    const teams = obs({ platform: 'teams', status: 'busy' });
    const zoom = obs({ platform: 'zoom', status: 'online', expiresAt: now - 1 });
    expect(toPresence(user([slack, teams, discord, zoom]), now, ladder).reachable_via).toEqual([
      'discord',
      'slack',
    ]);
  });

  it('is stale and offline when the newest observation is past its TTL, and still shows it', () => {
    const old = obs({
      platform: 'slack',
      status: 'online',
      observedAt: T0 - 600_000,
      expiresAt: T0 - 300_000,
    });
    const p = toPresence(user([old]), now, ladder);
    expect(p).toMatchObject({
      status: 'offline',
      source: null,
      stale: true,
      expires_at: null,
      observed_at: '2026-11-23T13:50:00.000Z',
    });
    expect(p.platforms.slack).toMatchObject({ status: 'offline', stale: true, raw: 'active' });
    expect(p.explain).toBe(
      'no live report: slack reported active (app tier) at 13:50:00, expired at 13:55:00',
    );
  });

  it('a user never seen is offline and not stale', () => {
    const p = toPresence(user([]), now, ladder);
    expect(p).toMatchObject({ status: 'offline', stale: false, observed_at: null, reachable_via: [] });
    expect(p.explain).toMatch(/no reports yet/);
  });

  it('shows per-device entries; heartbeat devices make up their platform', () => {
    const laptop = obs({
      platform: 'device',
      device: 'laptop',
      status: 'busy',
      activity: 'in_call',
      label: 'heartbeat busy/in_call',
    });
    const phone = obs({
      platform: 'device',
      device: 'phone',
      status: 'idle',
      observedAt: T0 + 1000,
      label: 'heartbeat idle',
    });
    const discord = obs({ platform: 'discord', status: 'online', label: 'online' });
    const desktop = obs({ platform: 'discord', device: 'desktop', status: 'online' });
    const p = toPresence(user([laptop, phone, discord, desktop]), now, ladder);
    expect(p.platforms.device?.status).toBe('idle');
    expect(Object.keys(p.platforms.device?.devices ?? {})).toEqual(['laptop', 'phone']);
    expect(p.platforms.device?.devices.laptop).toEqual({
      status: 'busy',
      observed_at: '2026-11-23T14:00:00.000Z',
      expires_at: '2026-11-23T14:05:00.000Z',
    });
    expect(p.platforms.device?.observed_at).toBe('2026-11-23T14:00:01.000Z');
    expect(p.platforms.discord?.devices).toHaveProperty('desktop');
    expect(p.reachable_via).toEqual(['discord', 'device']);
  });

  it('explains an override', () => {
    const p = toPresence(
      user([obs()], {
        override: {
          status: 'busy',
          activity: 'focus',
          customStatus: null,
          setAt: T0,
          expiresAt: T0 + 3600_000,
        },
      }),
      now,
      ladder,
    );
    expect(p).toMatchObject({
      status: 'busy',
      activity: 'focus',
      source: 'manual',
      expires_at: '2026-11-23T15:00:00.000Z',
    });
    expect(p.override).toMatchObject({ status: 'busy', set_at: '2026-11-23T14:00:00.000Z' });
    expect(p.explain).toBe(
      'override busy/focus set through the API at 14:00:00, until 15:00:00; it beats every platform report',
    );
  });
});
