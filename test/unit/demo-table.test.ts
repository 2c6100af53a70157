import { pages } from '../../demo/source';
import {
  availabilityText,
  budget,
  composeFrame,
  composeHeader,
  describeChange,
  fit,
  planColumns,
  rawLabel,
  renderChange,
  renderTable,
  screenLines,
  summarize,
  visible,
  type DemoRow,
} from '../../demo/table';
import { Ladder } from '../../src/core/presence';
import { toAvailability } from '../../src/normalizer/availability';
import { toPresence } from '../../src/normalizer/view';
import { T0, obs } from '../helpers/observations';

const ladder = new Ladder();
const plain = { color: false };

/** Alice: Slack says active, Teams and her laptop say she is in a meeting. */
function alice(): DemoRow {
  const presence = toPresence(
    {
      userId: 'alice',
      observations: [
        obs({
          platform: 'teams',
          status: 'busy',
          activity: 'in_meeting',
          raw: { availability: 'Busy', activity: 'InAMeeting' },
        }),
        obs({ platform: 'slack', status: 'online', raw: { presence: 'active' } }),
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
  return { presence, availability: toAvailability(presence) };
}

function person(id: string): DemoRow {
  const presence = toPresence(
    {
      userId: id,
      observations: [obs({ platform: 'slack', status: 'idle', raw: { presence: 'away', auto_away: true } })],
      override: null,
      version: 1,
      lastActiveAt: T0,
      identityOnly: [],
    },
    T0 + 5000,
    ladder,
  );
  return { presence, availability: toAvailability(presence) };
}

const strip = (l: string): string => l.replace(/\u001b\[[0-9;]*m/g, '');

describe('demo table: columns by priority', () => {
  it('keeps everything at full width when there is room, in screen order', () => {
    const { lines, legend } = renderTable([alice()], T0 + 5000, plain);
    expect(lines[0]).toMatch(
      /^USER\s+STATUS\s+AVAILABLE\s+REACHABLE VIA\s+ACTIVITY\s+SLACK\s+TEAMS\s+DISCORD\s+ZOOM\s+WHATSAPP\s+LINKEDIN\s+DEVICE\s+FRESH$/,
    );
    const row = lines[1]!;
    expect(row).toMatch(/^alice\s+● online\s+✗ in_meeting on teams\s+(slack,device|device,slack)\s/);
    expect(row).toContain('active ●');
    expect(row).toContain('Busy/InAMeeting ⊘');
    expect(row).toContain('identity only');
    expect(row).toContain('1 dev ●');
    expect(row).toMatch(/5s$/);
    expect(row).not.toContain('\u001b[');
    expect(legend).toContain("cell: the platform's raw value");
  });

  it('shows what the API answers for availability, and why not, next to the status', () => {
    const row = renderTable([alice()], T0 + 5000, plain, 100).lines[1]!;
    expect(row).toMatch(/^alice\s+● online\s+✗ in_meeting on teams/);
    const idle = renderTable([person('bob')], T0 + 5000, plain, 100).lines[1]!;
    expect(idle).toMatch(/^bob\s+◐ idle\s+✓ idle on slack/);
    // "status is busy; …" loses the half the STATUS column already says.
    expect(
      availabilityText({
        available: false,
        status: 'busy',
        activity: 'in_call',
        best_channel: null,
        reason: 'status is busy; in_call on zoom',
        observed_at: null,
        stale: false,
      }),
    ).toEqual({ ok: false, text: 'in_call on zoom' });
    expect(availabilityText(undefined)).toEqual({ ok: null, text: '…' });
  });

  it('at 100 columns keeps status, availability and reachable_via, with every platform as a mark', () => {
    const { lines, legend } = renderTable([alice()], T0 + 5000, plain, 100);
    for (const l of lines) expect(visible(l)).toBeLessThanOrEqual(100);
    expect(lines[0]).toMatch(/^USER\s+STATUS\s+AVAILABLE\s+REACHABLE VIA\s.*SL TM DC ZM WA LI DV/);
    expect(lines[1]).toMatch(/● {2}⊘ {2}.*id ●/);
    expect(legend).toContain('SL slack TM teams');
  });

  it('narrows platforms before the aggregate columns, and drops the lowest priority first', () => {
    const plan = planColumns(100);
    expect(plan.get('available')).toBe(22);
    expect(plan.get('teams')).toBe(2);
    expect([...planColumns(50).keys()]).toEqual(['user', 'status', 'available', 'reachable']);
    expect([...planColumns(60).keys()]).toEqual([
      'user',
      'status',
      'available',
      'reachable',
      'teams',
      'slack',
      'zoom',
      'discord',
    ]);
    expect([...planColumns(40).keys()]).toEqual(['user', 'status', 'available']);
    // Wider terminals spend the room on platforms in priority order: Teams before LinkedIn.
    const wide = planColumns(150);
    expect(wide.get('teams')).toBe(18);
    expect(wide.get('linkedin')).toBe(2);
    // Generic: narrowest first, widened in priority order with what is left.
    const cols = [
      { key: 'a', widths: [10, 4] },
      { key: 'b', widths: [10, 4] },
      { key: 'c', widths: [10, 4] },
    ];
    expect([...planColumns(9, cols)]).toEqual([
      ['a', 4],
      ['b', 4],
    ]);
    expect([...planColumns(20, cols)]).toEqual([
      ['a', 10],
      ['b', 4],
      ['c', 4],
    ]);
    expect(planColumns(3, cols).get('a')).toBe(4); // the first column always stays (the line is cut)
  });

  it('never draws a line wider than the terminal', () => {
    for (const width of [30, 60, 80, 100, 120, 160, 200, 260]) {
      const { lines } = renderTable([alice(), person('bob')], T0 + 5000, { color: true }, width);
      for (const l of lines) expect(visible(l)).toBeLessThanOrEqual(width);
    }
  });

  it('colours on a terminal', () => {
    expect(renderTable([alice()], T0, { color: true }).lines[1]).toContain('\u001b[32m● online\u001b[0m');
  });

  it('fits a coloured line to a width without breaking colour codes', () => {
    const line = renderTable([alice()], T0 + 5000, { color: true }).lines[1]!;
    const cut = fit(line, 40);
    expect(strip(cut)).toHaveLength(40);
    expect(cut.endsWith('…\u001b[0m')).toBe(true);
    expect(fit('short', 40)).toBe('short');
    expect(screenLines('x'.repeat(201), 100)).toBe(3);
    expect(screenLines('', 100)).toBe(1);
  });

  it('summarizes everyone for the line above the table', () => {
    expect(summarize([alice().availability!, person('b').availability!, person('c').availability!])).toBe(
      '2/3 available ● 1 ◐ 2 ⊘ 0 ○ 0 · 0',
    );
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

describe('demo screen: rows capped to the height', () => {
  it('shows every row when they fit, and gives the rest to the change lines', () => {
    expect(budget(30, 6, 12)).toEqual({ rows: 12, more: 0, changes: 7, extras: true });
  });

  it('caps the rows with "+N more" and keeps room for changes', () => {
    const b = budget(50, 6, 50);
    expect(b.rows + b.more).toBe(50);
    expect(b.more).toBeGreaterThan(0);
    expect(b.changes).toBeGreaterThanOrEqual(10);
    expect(budget(30, 6, 10_000)).toMatchObject({ rows: 13, more: 9987, changes: 5, extras: true });
  });

  it('never takes more rows than the terminal has, at any size', () => {
    const header = [
      'presence demo: 50 simulated people',
      `try: curl -H 'Authorization: Bearer pk_0123456789abcdef_${'k'.repeat(32)}' 'http://127.0.0.1:4000/v1/availability?user_ids=alice,bob'`,
      '0:42 left of 1:00',
    ];
    const rows = Array.from({ length: 50 }, (_, i) => person(`u${i}`));
    const changes = Array.from({ length: 40 }, (_, i) => `change ${i} ${'x'.repeat(150)}`);
    for (const width of [20, 40, 80, 100, 200]) {
      for (const height of [1, 3, 5, 8, 10, 20, 30, 50, 80]) {
        for (const total of [0, 1, 12, 50]) {
          const headerLines = header.reduce((n, h) => n + screenLines(h, width), 0);
          const b = budget(height, headerLines, total);
          const table = renderTable(rows.slice(0, b.rows), T0, plain, width);
          const frame = composeFrame({ header, table, budget: b, changes, style: plain }, width, height);
          const used = frame.reduce((n, l) => n + screenLines(l, width), 0);
          expect({ width, height, total, used: Math.min(used, height) }).toEqual({
            width,
            height,
            total,
            used,
          });
          if (total > 0 && b.rows < total && b.rows > 0) expect(frame).toContain(`+${total - b.rows} more`);
        }
      }
    }
  });

  it('cuts the header only when the terminal is too small even for it', () => {
    const header = ['a'.repeat(150), 'b'.repeat(50), 'c'.repeat(10)];
    expect(composeHeader(header, 100, 10)).toEqual({ lines: header, rows: 4, complete: true });
    expect(composeHeader(header, 100, 3)).toEqual({
      lines: [header[0], header[1]],
      rows: 3,
      complete: false,
    });
    expect(composeHeader(header, 100, 1)).toEqual({
      lines: [`${'a'.repeat(99)}…`],
      rows: 1,
      complete: false,
    });
  });

  it('prints the header whole (the terminal wraps it) and everything else cut', () => {
    const curl = `try: curl -H 'Authorization: Bearer pk_x' 'http://127.0.0.1:4000/v1/availability?user_ids=alice,bob'${'!'.repeat(40)}`;
    const b = budget(30, 3, 2);
    const frame = composeFrame(
      {
        header: [curl, 'status'],
        table: renderTable([alice(), person('bob')], T0, plain, 100),
        budget: b,
        changes: ['one', 'two', 'x'.repeat(300)],
        style: plain,
      },
      100,
      30,
    );
    expect(frame[0]).toBe(curl);
    expect(frame.slice(1).every((l) => visible(l) <= 100)).toBe(true);
    expect(frame).toContain('recent changes:');
    expect(frame.at(-1)).toMatch(/^x+…$/);
  });
});

describe('demo change lines say what changed', () => {
  const none = null;
  const lunch = { text: 'Lunch', emoji: ':knife_fork_plate:', expires_at: null };

  it.each([
    [
      { status: 'online', activity: none, custom_status: none },
      { status: 'busy', activity: 'in_call', custom_status: none },
      '● online → ⊘ busy (in_call)',
    ],
    [
      { status: 'busy', activity: 'in_meeting', custom_status: none },
      { status: 'busy', activity: 'do_not_disturb', custom_status: none },
      '⊘ busy: in_meeting → do_not_disturb',
    ],
    [
      { status: 'busy', activity: none, custom_status: none },
      { status: 'busy', activity: 'do_not_disturb', custom_status: none },
      '⊘ busy: no activity → do_not_disturb',
    ],
    [
      { status: 'online', activity: none, custom_status: lunch },
      { status: 'online', activity: none, custom_status: none },
      '● online: custom status “Lunch” → none',
    ],
    [
      { status: 'away', activity: none, custom_status: none },
      { status: 'idle', activity: none, custom_status: lunch },
      '○ away → ◐ idle; custom status none → “Lunch”',
    ],
    [
      { status: 'online', activity: none, custom_status: lunch },
      {
        status: 'online',
        activity: none,
        custom_status: { ...lunch, expires_at: '2030-01-01T00:00:00.000Z' },
      },
      '● online: custom status expiry updated',
    ],
  ] as const)('%j → %j reads %s', (previous, current, text) => {
    expect(describeChange({ previous, current }, plain)).toBe(text);
  });

  it('renders a whole change line: time, user, version, what changed, why', () => {
    const line = renderChange(
      {
        at: T0,
        userId: 'bob',
        version: 4,
        previous: { status: 'online', activity: null, custom_status: null },
        current: { status: 'busy', activity: 'in_call', custom_status: null },
        explain: 'zoom reported On_Phone_Call',
      },
      plain,
    );
    expect(line).toBe('14:00:00 bob       v4   ● online → ⊘ busy (in_call)  zoom reported On_Phone_Call');
  });
});

describe('demo reads in pages', () => {
  it('splits ids into pages no larger than the limit', () => {
    const ids = Array.from({ length: 2501 }, (_, i) => `u${i}`);
    const p = pages(ids, 1000);
    expect(p.map((x) => x.length)).toEqual([1000, 1000, 501]);
    expect(p.flat()).toEqual(ids);
    expect(pages([], 1000)).toEqual([]);
    expect(() => pages(ids, 0)).toThrow(/page size/);
  });
});
