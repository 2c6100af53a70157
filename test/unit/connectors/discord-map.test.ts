import { toDiscordPresence } from '../../../connectors/discord/map';

const now = 0;

describe('Discord mapping', () => {
  it.each([
    ['online', 'online', null, 'app'],
    ['idle', 'idle', null, 'app'],
    ['dnd', 'busy', 'do_not_disturb', 'manual'],
    ['offline', 'offline', null, 'app'],
    ['invisible', 'offline', null, 'app'],
  ])('%s → %s %s (%s tier)', (status, expected, activity, source) => {
    expect(toDiscordPresence({ status }, now)?.state).toMatchObject({
      status: expected,
      activity,
      source,
      label: status,
    });
  });

  it('an unknown status is not guessed', () => {
    expect(toDiscordPresence({ status: 'streaming' }, now)).toBeNull();
  });

  it('client_status becomes device entries; an absent device is not listed', () => {
    const m = toDiscordPresence({ status: 'dnd', client_status: { desktop: 'dnd', mobile: 'idle' } }, now);
    expect(Object.keys(m?.devices ?? {})).toEqual(['desktop', 'mobile']);
    expect(m?.devices?.desktop).toMatchObject({
      status: 'busy',
      activity: 'do_not_disturb',
      source: 'manual',
    });
    expect(m?.devices?.mobile).toMatchObject({ status: 'idle', raw: 'idle' });
  });

  it('a Custom activity (type 4) is the custom status; other activities stay raw', () => {
    const m = toDiscordPresence(
      {
        status: 'online',
        activities: [
          { type: 0, name: 'Factorio' },
          { type: 4, name: 'Custom Status', state: 'deep work', emoji: { name: '🎧' } },
        ],
      },
      now,
    );
    expect(m?.state.customStatus).toEqual({ text: 'deep work', emoji: '🎧', expiresAt: null });
    expect(m?.state.raw).toMatchObject({
      activities: [
        { type: 0, name: 'Factorio' },
        { type: 4, state: 'deep work' },
      ],
    });
  });
});
