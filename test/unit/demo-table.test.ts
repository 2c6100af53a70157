import { fit, rawLabel, renderChange, renderTable } from '../../demo/table';
import { Ladder } from '../../src/core/presence';
import { toPresence } from '../../src/normalizer/view';
import { T0, obs } from '../helpers/observations';

const ladder = new Ladder();

describe('demo table', () => {
  const view = toPresence(
    {
      userId: 'alice',
      observations: [
        obs({
          platform: 'teams',
          status: 'busy',
          activity: 'in_meeting',
          raw: { availability: 'Busy', activity: 'InAMeeting' },
        }),
        obs({ platform: 'slack', status: 'idle', raw: { presence: 'away', auto_away: true } }),
        obs({ platform: 'device', device: 'laptop', status: 'online', raw: { status: 'online' } }),
      ],
      override: null,
      version: 3,
      lastActiveAt: T0,
      identityOnly: ['linkedin'],
    },
    T0 + 5000,
    ladder,
  );

  it('shows each platform in its own words next to the normalized status, without colour off a terminal', () => {
    const [head, row, legend] = renderTable([view], T0 + 5000, { color: false });
    expect(head).toMatch(
      /^USER\s+STATUS\s+ACTIVITY\s+SLACK\s+TEAMS\s+DISCORD\s+ZOOM\s+WHATSAPP\s+LINKEDIN\s+DEVICE\s+FRESH\s+REACHABLE VIA$/,
    );
    expect(row).toContain('alice');
    expect(row).toContain('● online');
    expect(row).toContain('away+auto_away ◐');
    expect(row).toContain('Busy/InAMeeting ⊘');
    expect(row).toContain('identity only');
    expect(row).toContain('1 dev ●');
    expect(row).toMatch(/5s\s+device,slack$/);
    expect(row).not.toContain('\u001b[');
    expect(legend).toMatch(/^legend:/);
  });

  it('colours on a terminal', () => {
    expect(renderTable([view], T0, { color: true })[1]).toContain('\u001b[32m● online\u001b[0m');
  });

  it('fits a coloured line to a width without breaking colour codes', () => {
    const line = renderTable([view], T0 + 5000, { color: true })[1]!;
    const cut = fit(line, 40);
    expect(cut.replace(/\u001b\[[0-9;]*m/g, '')).toHaveLength(40);
    expect(cut.endsWith('…\u001b[0m')).toBe(true);
    expect(fit('short', 40)).toBe('short');
  });

  it('renders a change line', () => {
    const line = renderChange(
      {
        at: T0,
        userId: 'bob',
        version: 4,
        from: 'online',
        to: 'busy',
        activity: 'in_call',
        explain: 'zoom reported On_Phone_Call',
      },
      { color: false },
    );
    expect(line).toBe('14:00:00 bob      v4   ● online  → ⊘ busy    (in_call)  zoom reported On_Phone_Call');
  });

  it.each([
    ['active', 'active'],
    [{ availability: 'Busy', activity: 'InACall' }, 'Busy/InACall'],
    [{ presence: 'active', dnd_enabled: true }, 'active+dnd'],
    [{ status: 'dnd', client_status: {} }, 'dnd'],
    [{ kind: 'message' }, 'message'],
    [null, 'null'],
  ])('labels raw %j as %s', (raw, label) => {
    expect(rawLabel(raw)).toBe(label);
  });
});
