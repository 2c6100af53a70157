import { Ladder } from '../../src/core/presence';
import { toAvailability } from '../../src/normalizer/availability';
import { toPresence } from '../../src/normalizer/view';
import { T0, obs } from '../helpers/observations';

const ladder = new Ladder();
const view = (observations = [obs()], override = null as Parameters<typeof toPresence>[0]['override']) =>
  toPresence({ userId: 'a', observations, override, version: 1, lastActiveAt: null }, T0 + 1000, ladder);

describe('toAvailability', () => {
  it('online with no blocking activity is available on the best messaging channel', () => {
    const a = toAvailability(
      view([obs({ platform: 'device', device: 'phone' }), obs({ platform: 'slack' })]),
    );
    expect(a).toMatchObject({
      available: true,
      status: 'online',
      best_channel: 'slack',
      reason: 'online on slack',
      stale: false,
    });
  });

  it('a blocking activity on any live observation makes the person unavailable, even if online wins', () => {
    const a = toAvailability(
      view([obs({ platform: 'slack' }), obs({ platform: 'teams', status: 'busy', activity: 'in_meeting' })]),
    );
    expect(a).toMatchObject({
      available: false,
      status: 'online',
      best_channel: 'slack',
      reason: 'in_meeting on teams',
    });
  });

  it('an expired blocking activity no longer blocks', () => {
    const a = toAvailability(
      view([
        obs({ platform: 'slack' }),
        obs({ platform: 'teams', status: 'busy', activity: 'in_meeting', expiresAt: T0 + 500 }),
      ]),
    );
    expect(a.available).toBe(true);
  });

  it.each(['busy', 'away', 'offline'] as const)('%s is not available', (status) => {
    expect(toAvailability(view([obs({ status })]))).toMatchObject({
      available: false,
      best_channel: null,
      reason: `status is ${status}`,
    });
  });

  it('a stale user is not available and says why', () => {
    expect(toAvailability(view([obs({ expiresAt: T0 })]))).toMatchObject({
      available: false,
      stale: true,
      reason: 'no live report (last known state expired)',
    });
    expect(toAvailability(view([]))).toMatchObject({
      available: false,
      stale: false,
      reason: 'no live report',
    });
  });

  it('an override with a blocking activity blocks', () => {
    const a = toAvailability(
      view([obs()], {
        status: 'online',
        activity: 'focus',
        customStatus: null,
        setAt: T0,
        expiresAt: T0 + 60_000,
      }),
    );
    expect(a).toMatchObject({ available: false, reason: 'focus on override' });
  });

  it('online on a device only is available with no messaging channel', () => {
    expect(toAvailability(view([obs({ platform: 'device', device: 'laptop' })]))).toMatchObject({
      available: true,
      best_channel: null,
      reason: 'online (device heartbeat only)',
    });
  });
});
