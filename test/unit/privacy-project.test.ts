import { Ladder } from '../../src/core/presence';
import { toAvailability } from '../../src/normalizer/availability';
import { toPresence, type PresenceView } from '../../src/normalizer/view';
import {
  accessOf,
  approxLastSeen,
  project,
  projectAvailability,
  projectHistory,
  type PrivacyLookup,
  type PrivacyRecord,
  type PrivacySettings,
  type TransitionView,
  type Visibility,
} from '../../src/privacy/project';
import { projectChange } from '../../src/privacy/stream';
import { T0, obs } from '../helpers/observations';

const DAY = 86_400_000;
const ladder = new Ladder();

/** Alice in a meeting on Teams (with a device), seen at T0. */
function alice(observedAt = T0): PresenceView {
  return toPresence(
    {
      userId: 'alice',
      observations: [
        obs({ platform: 'teams', status: 'busy', activity: 'in_meeting', raw: 'Busy', observedAt }),
        obs({ platform: 'device', device: 'phone', status: 'away', observedAt }),
      ],
      override: null,
      version: 7,
      lastActiveAt: observedAt,
    },
    observedAt + 1000,
    ladder,
  );
}

const DEFAULTS: PrivacySettings = {
  presence: 'everyone',
  lastSeen: 'everyone',
  details: 'everyone',
  reciprocal: false,
};

function lookup(
  records: Record<string, Partial<PrivacySettings> & { contacts?: string[]; blocked?: string[] }>,
): PrivacyLookup {
  return {
    of(userId: string): PrivacyRecord {
      const r = records[userId] ?? {};
      const { contacts = [], blocked = [], ...settings } = r;
      return {
        settings: { ...DEFAULTS, ...settings },
        contacts: new Set(contacts),
        blocked: new Set(blocked),
      };
    },
  };
}

const bob = { userId: 'bob' };
const carol = { userId: 'carol' };
const NOW = T0 + 1000;

describe('project: the presence rule', () => {
  it.each<[Visibility, boolean, boolean]>([
    ['everyone', true, true],
    ['contacts', true, false],
    ['nobody', false, false],
  ])('presence %s: a contact sees it %s, a non-contact %s', (rule, contactSees, otherSees) => {
    const s = lookup({ alice: { presence: rule, contacts: ['bob'] } });
    expect(project(alice(), bob, s, NOW) !== null).toBe(contactSees);
    expect(project(alice(), carol, s, NOW) !== null).toBe(otherSees);
  });

  it('everything visible: the very object, unchanged (no copy, no extra fields)', () => {
    const p = alice();
    const out = project(p, carol, lookup({}), NOW);
    expect(out).toBe(p);
    expect(out).not.toHaveProperty('last_seen_approx');
  });

  it('a blocked viewer sees nothing, even when listed as a contact and everything is open', () => {
    const s = lookup({ alice: { contacts: ['bob'], blocked: ['bob'] } });
    expect(project(alice(), bob, s, NOW)).toBeNull();
    expect(project(alice(), carol, s, NOW)).not.toBeNull();
  });

  it('contacts are one-way: bob listing alice does not make bob her contact', () => {
    const s = lookup({ alice: { presence: 'contacts' }, bob: { contacts: ['alice'] } });
    expect(project(alice(), bob, s, NOW)).toBeNull();
  });

  it("one's own presence is always fully visible, whatever one's settings", () => {
    const p = alice();
    const s = lookup({
      alice: {
        presence: 'nobody',
        lastSeen: 'nobody',
        details: 'nobody',
        reciprocal: true,
        blocked: ['alice'],
      },
    });
    expect(project(p, { userId: 'alice' }, s, NOW)).toBe(p);
  });
});

describe('project: last_seen', () => {
  it.each<[Visibility, boolean, boolean]>([
    ['everyone', true, true],
    ['contacts', true, false],
    ['nobody', false, false],
  ])('last_seen %s: a contact sees the times %s, a non-contact %s', (rule, contactSees, otherSees) => {
    const s = lookup({ alice: { lastSeen: rule, contacts: ['bob'] } });
    for (const [viewer, sees] of [
      [bob, contactSees],
      [carol, otherSees],
    ] as const) {
      const out = project(alice(), viewer, s, NOW)!;
      expect(out.observed_at !== null).toBe(sees);
      expect(out.last_active_at !== null).toBe(sees);
      expect(out.status).toBe('busy');
      if (sees) expect(out).not.toHaveProperty('last_seen_approx');
      else expect(out.last_seen_approx).toBe('recently');
    }
  });

  it('hidden last seen leaves no time anywhere: expiry, platforms, devices, explanation', () => {
    const out = project(alice(), carol, lookup({ alice: { lastSeen: 'nobody' } }), NOW)!;
    expect(out.expires_at).toBeNull();
    expect(out.explain).toBe('');
    expect(out.activity).toBe('in_meeting'); // details are still shown
    const text = JSON.stringify(out);
    expect(text).not.toMatch(/\d{4}-\d\d-\d\dT/);
    expect(out.platforms).toHaveProperty('teams');
    expect(out.platforms).toHaveProperty('device.devices.phone', {
      status: 'away',
      observed_at: null,
      expires_at: null,
    });
  });

  it.each<[number, string]>([
    [0, 'recently'],
    [3 * DAY, 'recently'],
    [3 * DAY + 1, 'within_week'],
    [7 * DAY, 'within_week'],
    [7 * DAY + 1, 'within_month'],
    [30 * DAY, 'within_month'],
    [30 * DAY + 1, 'long_ago'],
  ])("last_seen_approx %i ms after the last report: %s (the clock is the caller's)", (age, word) => {
    // Away and expired: not "recently" by being online now.
    const seen = T0;
    const p = toPresence(
      {
        userId: 'alice',
        observations: [obs({ status: 'away', observedAt: seen })],
        override: null,
        version: 1,
        lastActiveAt: seen,
      },
      seen + age,
      ladder,
    );
    expect(approxLastSeen(p, seen + age)).toBe(word);
    expect(project(p, carol, lookup({ alice: { lastSeen: 'nobody' } }), seen + age)!.last_seen_approx).toBe(
      word,
    );
  });

  it('someone online now was seen recently, however old the first report', () => {
    const p = toPresence(
      {
        userId: 'alice',
        observations: [obs({ observedAt: T0, expiresAt: T0 + 60 * DAY })],
        override: null,
        version: 1,
        lastActiveAt: null,
      },
      T0 + 40 * DAY,
      ladder,
    );
    expect(approxLastSeen(p, T0 + 40 * DAY)).toBe('recently');
  });

  it('never seen at all is long_ago', () => {
    const p = toPresence(
      { userId: 'alice', observations: [], override: null, version: 0, lastActiveAt: null },
      T0,
      ladder,
    );
    expect(approxLastSeen(p, T0)).toBe('long_ago');
  });
});

describe('project: details', () => {
  it.each<[Visibility, boolean, boolean]>([
    ['everyone', true, true],
    ['contacts', true, false],
    ['nobody', false, false],
  ])('details %s: a contact sees them %s, a non-contact %s', (rule, contactSees, otherSees) => {
    const s = lookup({ alice: { details: rule, contacts: ['bob'] } });
    for (const [viewer, sees] of [
      [bob, contactSees],
      [carol, otherSees],
    ] as const) {
      const out = project(alice(), viewer, s, NOW)!;
      expect(out.status).toBe('busy');
      if (sees) {
        expect(out.activity).toBe('in_meeting');
        expect(Object.keys(out.platforms).sort()).toEqual(['device', 'teams']);
      } else {
        expect(out).toMatchObject({
          activity: null,
          custom_status: null,
          source: null,
          reachable_via: [],
          identity_only: [],
          explain: '',
          override: null,
          platforms: {},
        });
        // Last seen is another rule: still shown.
        expect(out.observed_at).toBe(alice().observed_at);
      }
    }
  });

  it('details and last seen both hidden: status, version and the approximate last seen remain', () => {
    const out = project(alice(), carol, lookup({ alice: { details: 'nobody', lastSeen: 'nobody' } }), NOW)!;
    expect(out).toMatchObject({
      user_id: 'alice',
      status: 'busy',
      activity: null,
      observed_at: null,
      last_active_at: null,
      platforms: {},
      last_seen_approx: 'recently',
      version: 7,
    });
  });
});

describe('project: reciprocal', () => {
  it('a viewer who hides their last seen from someone, reciprocally, does not see theirs', () => {
    const s = lookup({ carol: { lastSeen: 'contacts', reciprocal: true, contacts: ['dave'] } });
    const out = project(alice(), carol, s, NOW)!;
    expect(out.observed_at).toBeNull();
    expect(out.last_seen_hidden_by_own_settings).toBe(true);
    expect(out.last_seen_approx).toBe('recently');
  });

  it('no effect when the viewer shows their last seen to that person', () => {
    const s = lookup({ carol: { lastSeen: 'contacts', reciprocal: true, contacts: ['alice'] } });
    const p = alice();
    expect(project(p, carol, s, NOW)).toBe(p);
  });

  it('no effect without reciprocal, even when the viewer hides their own last seen', () => {
    const s = lookup({ carol: { lastSeen: 'nobody', reciprocal: false } });
    const out = project(alice(), carol, s, NOW)!;
    expect(out.observed_at).not.toBeNull();
    expect(out).not.toHaveProperty('last_seen_hidden_by_own_settings');
  });

  it('hidden by the other side only: no reciprocal flag', () => {
    const out = project(alice(), carol, lookup({ alice: { lastSeen: 'nobody' } }), NOW)!;
    expect(out).not.toHaveProperty('last_seen_hidden_by_own_settings');
  });
});

describe('projectAvailability and projectHistory', () => {
  it('availability without details has no activity, channel or reason; without last seen no time', () => {
    const p = alice();
    const av = toAvailability(p);
    const s = lookup({ alice: { details: 'nobody', lastSeen: 'nobody' } });
    expect(projectAvailability(av, accessOf('alice', carol, s))).toEqual({
      ...av,
      activity: null,
      best_channel: null,
      reason: null,
      observed_at: null,
    });
    expect(projectAvailability(av, accessOf('alice', carol, lookup({})))).toBe(av);
    expect(
      projectAvailability(av, accessOf('alice', carol, lookup({ alice: { blocked: ['carol'] } }))),
    ).toBeNull();
  });

  const transitions: TransitionView[] = [
    {
      version: 3,
      at: 'x3',
      from: { status: 'busy', activity: 'in_meeting' },
      to: { status: 'online', activity: null },
      source: 'app',
      platform: 'teams',
    },
    {
      version: 2,
      at: 'x2',
      from: { status: 'busy', activity: 'in_call' },
      to: { status: 'busy', activity: 'in_meeting' },
      source: 'app',
      platform: 'teams',
    },
  ];

  it('history: all of it, only status changes without details, nothing without last seen, null when hidden', () => {
    expect(projectHistory(transitions, accessOf('alice', carol, lookup({})))).toEqual(transitions);
    expect(
      projectHistory(transitions, accessOf('alice', carol, lookup({ alice: { details: 'nobody' } }))),
    ).toEqual([
      {
        version: 3,
        at: 'x3',
        from: { status: 'busy', activity: null },
        to: { status: 'online', activity: null },
        source: null,
        platform: null,
      },
    ]);
    expect(
      projectHistory(transitions, accessOf('alice', carol, lookup({ alice: { lastSeen: 'nobody' } }))),
    ).toEqual([]);
    expect(
      projectHistory(transitions, accessOf('alice', carol, lookup({ alice: { presence: 'nobody' } }))),
    ).toBeNull();
  });
});

describe('projectChange (stream messages)', () => {
  const change = (changed: string[]) => ({
    user_id: 'alice',
    version: 8,
    previous: { status: 'busy', activity: 'in_call', custom_status: null },
    current: alice() as unknown as Record<string, unknown>,
    changed,
  });

  it('hidden: nothing; all visible: the very change', () => {
    const c = change(['activity']);
    expect(
      projectChange(c, accessOf('alice', carol, lookup({ alice: { blocked: ['carol'] } })), NOW),
    ).toBeNull();
    expect(projectChange(c, accessOf('alice', carol, lookup({})), NOW)).toBe(c);
  });

  it('details hidden: an activity-only change sends nothing; a status change is reduced', () => {
    const s = lookup({ alice: { details: 'nobody' } });
    expect(projectChange(change(['activity']), accessOf('alice', carol, s), NOW)).toBeNull();
    const out = projectChange(change(['status', 'activity']), accessOf('alice', carol, s), NOW)!;
    expect(out.changed).toEqual(['status']);
    expect(out.previous).toEqual({ status: 'busy', activity: null, custom_status: null });
    expect(out.current).toMatchObject({ activity: null, platforms: {} });
  });

  it('last seen hidden: the current presence carries no times', () => {
    const out = projectChange(
      change(['activity']),
      accessOf('alice', carol, lookup({ alice: { lastSeen: 'nobody' } })),
      NOW,
    )!;
    expect(out.current).toMatchObject({ observed_at: null, last_seen_approx: 'recently' });
  });
});
