import { Ladder, type Override } from '../../src/core/presence';
import { DEFAULT_DECAY } from '../../src/core/signals';
import { changedFields, nextCheckAt, reduce } from '../../src/normalizer/reduce';
import { T0, obs } from '../helpers/observations';

const ladder = new Ladder();
const now = T0 + 1000;

function override(fields: Partial<Override> = {}): Override {
  return {
    status: 'busy',
    activity: 'focus',
    customStatus: null,
    setAt: T0,
    expiresAt: T0 + 3600_000,
    ...fields,
  };
}

describe('reduce: the rules of docs/api.md, one by one', () => {
  it('with no observation at all the user is offline with no source', () => {
    const r = reduce([], null, now, ladder);
    expect(r).toMatchObject({ status: 'offline', activity: null, source: null, winner: null });
  });

  it('a stronger tier beats a status higher on the ladder', () => {
    const manualAway = obs({ platform: 'slack', status: 'away', source: 'manual' });
    const appOnline = obs({ platform: 'teams', status: 'online', source: 'app' });
    const inferredOnline = obs({ platform: 'whatsapp', status: 'online', source: 'inferred' });
    expect(reduce([appOnline, manualAway, inferredOnline], null, now, ladder)).toMatchObject({
      status: 'away',
      source: 'manual',
      winner: manualAway,
    });
    expect(reduce([inferredOnline, appOnline], null, now, ladder).winner).toBe(appOnline);
  });

  it('within a tier the status highest on the ladder wins', () => {
    const busy = obs({ platform: 'teams', status: 'busy', activity: 'in_meeting' });
    const idle = obs({ platform: 'slack', status: 'idle' });
    const away = obs({ platform: 'zoom', status: 'away' });
    const r = reduce([busy, away, idle], null, now, ladder);
    expect(r.status).toBe('idle');
    expect(r.winner).toBe(idle);
  });

  it('follows a configured ladder', () => {
    const busyFirst = Ladder.parse('busy,online,idle,away,offline');
    const busy = obs({ platform: 'teams', status: 'busy' });
    const online = obs({ platform: 'slack', status: 'online' });
    expect(reduce([online, busy], null, now, busyFirst).status).toBe('busy');
  });

  it('a tie goes to the newest observation', () => {
    const older = obs({ platform: 'teams', status: 'busy', activity: 'in_meeting', observedAt: T0 - 5000 });
    const newer = obs({ platform: 'zoom', status: 'busy', activity: 'in_call', observedAt: T0 - 1000 });
    expect(reduce([older, newer], null, now, ladder)).toMatchObject({ activity: 'in_call', winner: newer });
    expect(reduce([newer, older], null, now, ladder).winner).toBe(newer);
  });

  it('a refresh of an unchanged state does not steal a tie (changedAt decides before observedAt)', () => {
    const teams = obs({
      platform: 'teams',
      status: 'busy',
      activity: 'in_meeting',
      changedAt: T0 - 60_000,
      observedAt: T0,
    });
    const zoom = obs({
      platform: 'zoom',
      status: 'busy',
      activity: 'in_call',
      changedAt: T0 - 1000,
      observedAt: T0 - 1000,
    });
    expect(reduce([teams, zoom], null, now, ladder).winner).toBe(zoom);
  });

  it('expired observations are ignored', () => {
    const expired = obs({ platform: 'teams', status: 'online', expiresAt: now });
    const live = obs({ platform: 'slack', status: 'away' });
    expect(reduce([expired, live], null, now, ladder).winner).toBe(live);
    expect(reduce([expired], null, now, ladder)).toMatchObject({ status: 'offline', source: null });
  });

  it('an override wins over every observation, manual ones included, until it expires', () => {
    const manualDnd = obs({ status: 'busy', activity: 'do_not_disturb', source: 'manual' });
    const ov = override({ status: 'away', activity: 'out_of_office', expiresAt: now + 10 });
    expect(reduce([manualDnd], ov, now, ladder)).toMatchObject({
      status: 'away',
      activity: 'out_of_office',
      source: 'manual',
      override: ov,
      winner: null,
    });
    expect(reduce([manualDnd], ov, now + 10, ladder)).toMatchObject({
      status: 'busy',
      winner: manualDnd,
      override: null,
    });
  });

  it('an override keeps a platform custom status unless it sets its own', () => {
    const cs = { text: 'Sprint review', emoji: ':calendar:', expiresAt: null };
    const slack = obs({ customStatus: cs });
    expect(reduce([slack], override(), now, ladder).customStatus).toEqual(cs);
    const own = { text: 'Heads down', emoji: null, expiresAt: null };
    expect(reduce([slack], override({ customStatus: own }), now, ladder).customStatus).toEqual(own);
  });

  it('takes the custom status from the strongest live observation that has one, not only the winner', () => {
    const teams = obs({ platform: 'teams', status: 'busy', activity: 'in_meeting' });
    const slack = obs({
      platform: 'slack',
      status: 'away',
      customStatus: { text: 'Sprint review', emoji: ':spiral_calendar_pad:', expiresAt: null },
    });
    const r = reduce([teams, slack], null, now, ladder);
    expect(r.winner).toBe(teams);
    expect(r.customStatus?.text).toBe('Sprint review');
  });

  it('drops a custom status past its own expiry', () => {
    const slack = obs({ customStatus: { text: 'Lunch', emoji: null, expiresAt: now } });
    expect(reduce([slack], null, now, ladder).customStatus).toBeNull();
  });

  it('an inferred signal fades: online, then idle, then away', () => {
    const wa = obs({
      platform: 'whatsapp',
      source: 'inferred',
      decay: DEFAULT_DECAY,
      observedAt: T0,
      expiresAt: T0 + 3600_000,
    });
    expect(reduce([wa], null, T0 + 60_000, ladder).status).toBe('online');
    expect(reduce([wa], null, T0 + 300_000, ladder).status).toBe('idle');
    expect(reduce([wa], null, T0 + 1800_000, ladder).status).toBe('away');
    expect(reduce([wa], null, T0 + 3600_000, ladder).status).toBe('offline');
  });

  it('device entries count for a platform only when it sends no platform-level report', () => {
    const discord = obs({ platform: 'discord', status: 'idle' });
    const discordDesktop = obs({ platform: 'discord', device: 'desktop', status: 'online' });
    expect(reduce([discord, discordDesktop], null, now, ladder).status).toBe('idle');
    const laptop = obs({ platform: 'device', device: 'laptop-1', status: 'busy' });
    const phone = obs({ platform: 'device', device: 'phone-1', status: 'online' });
    expect(reduce([laptop, phone], null, now, ladder).winner).toBe(phone);
  });
});

describe('changedFields', () => {
  it('names what differs among status, activity and custom_status', () => {
    const a = { status: 'online', activity: null, customStatus: null } as const;
    expect(changedFields(a, a)).toEqual([]);
    expect(changedFields(a, { ...a, status: 'busy', activity: 'in_call' })).toEqual(['status', 'activity']);
    expect(changedFields(a, { ...a, customStatus: { text: 'x', emoji: null, expiresAt: null } })).toEqual([
      'custom_status',
    ]);
    const cs = { text: 'x', emoji: null, expiresAt: null };
    expect(changedFields({ ...a, customStatus: cs }, { ...a, customStatus: { ...cs } })).toEqual([]);
  });
});

describe('nextCheckAt', () => {
  it('is the earliest expiry, decay step, custom status expiry or override expiry still ahead', () => {
    const a = obs({ expiresAt: T0 + 50_000 });
    const b = obs({
      platform: 'teams',
      expiresAt: T0 + 20_000,
      customStatus: { text: 'x', emoji: null, expiresAt: T0 + 10_000 },
    });
    expect(nextCheckAt([a, b], null, T0)).toBe(T0 + 10_000);
    expect(nextCheckAt([a, b], null, T0 + 10_000)).toBe(T0 + 20_000);
    expect(nextCheckAt([a], override({ expiresAt: T0 + 5000 }), T0)).toBe(T0 + 5000);
    const wa = obs({ platform: 'whatsapp', decay: DEFAULT_DECAY, expiresAt: T0 + 3600_000 });
    expect(nextCheckAt([wa], null, T0)).toBe(T0 + 120_000);
    expect(nextCheckAt([], null, T0)).toBe(Number.POSITIVE_INFINITY);
  });
});
