/**
 * @module demo/table
 * The demo's screen, as pure functions: presence and availability objects in, lines out. Which
 * columns fit a width (and how wide each is), how many rows fit a height, and what a change line
 * says are all decided here, so they are tested without a terminal.
 */

import type { Activity, Platform, Status } from '../src/core/presence';
import { clockTime, parseIso } from '../src/core/time';
import type { AvailabilityView } from '../src/normalizer/availability';
import type { CustomStatusView, PresenceView } from '../src/normalizer/view';

export const DEMO_PLATFORMS = [
  'slack',
  'teams',
  'discord',
  'zoom',
  'whatsapp',
  'linkedin',
  'device',
] as const satisfies readonly Platform[];
type DemoPlatform = (typeof DEMO_PLATFORMS)[number];

/** Two-letter names for platform columns narrowed to their status mark. */
const SHORT: Record<DemoPlatform, string> = {
  slack: 'SL',
  teams: 'TM',
  discord: 'DC',
  zoom: 'ZM',
  whatsapp: 'WA',
  linkedin: 'LI',
  device: 'DV',
};

const ESC = '\u001b[';
const COLORS: Record<Status, string> = { online: '32', idle: '33', busy: '31', away: '35', offline: '90' };
const SYMBOL: Record<Status, string> = { online: '●', idle: '◐', busy: '⊘', away: '○', offline: '·' };

export interface Style {
  readonly color: boolean;
}

const paint = (style: Style, code: string, text: string): string =>
  style.color ? `${ESC}${code}m${text}${ESC}0m` : text;
// eslint-disable-next-line no-control-regex -- stripping ANSI colour codes is the point
const ANSI = /\u001b\[[0-9;]*m/g;
/** Visible columns of a line: every character the demo prints is one column wide. */
export const visible = (text: string): number => [...text.replace(ANSI, '')].length;
const pad = (text: string, width: number): string => text + ' '.repeat(Math.max(0, width - visible(text)));
const cut = (text: string, width: number): string =>
  [...text].length <= width ? text : `${[...text].slice(0, Math.max(0, width - 1)).join('')}…`;

/** Cuts a line to `width` visible columns, leaving colour codes whole, so a narrow terminal never wraps. */
export function fit(line: string, width: number): string {
  if (visible(line) <= width) return line;
  let out = '';
  let shown = 0;
  for (let i = 0; i < line.length;) {
    if (line[i] === '\u001b') {
      const end = line.indexOf('m', i);
      out += line.slice(i, end + 1);
      i = end + 1;
      continue;
    }
    const ch = String.fromCodePoint(line.codePointAt(i)!);
    if (shown === width - 1) return line.includes('\u001b') ? `${out}…${ESC}0m` : `${out}…`;
    out += ch;
    shown += 1;
    i += ch.length;
  }
  return out;
}

/** How many terminal rows a line takes once the terminal wraps it. */
export const screenLines = (line: string, width: number): number =>
  Math.max(1, Math.ceil(visible(line) / Math.max(1, width)));

/** A platform's raw value in its own words, short. */
export function rawLabel(raw: unknown): string {
  if (typeof raw === 'string') return raw;
  if (raw === null || typeof raw !== 'object') return String(raw);
  const r = raw as Record<string, unknown>;
  if (typeof r.availability === 'string' && typeof r.activity === 'string')
    return `${r.availability}/${r.activity}`;
  if (typeof r.presence === 'string') {
    const flags = ['auto_away', 'manual_away', 'dnd_enabled']
      .filter((f) => r[f] === true)
      .map((f) => f.replace('_enabled', ''));
    return [r.presence, ...flags].join('+');
  }
  if (typeof r.status === 'string') return r.status;
  if (typeof r.kind === 'string') return r.kind;
  return JSON.stringify(raw);
}

function age(iso: string | null, now: number): string {
  if (iso === null) return '—';
  const s = Math.max(0, Math.round((now - parseIso(iso)) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h`;
}

const statusText = (style: Style, s: Status): string => paint(style, COLORS[s], `${SYMBOL[s]} ${s}`);

// ------------------------------------------------------------------ columns

/** One row of the table: what the API answers for a person. */
export interface DemoRow {
  readonly presence: PresenceView;
  /** `GET /v1/availability` for the same person; absent while it has not been read yet. */
  readonly availability?: AvailabilityView;
}

type ColumnKey = 'user' | 'status' | 'available' | 'reachable' | 'activity' | 'fresh' | DemoPlatform;

interface Column {
  readonly key: ColumnKey;
  /** The widths it can take, widest first. */
  readonly widths: readonly number[];
  readonly title: (width: number) => string;
  /** The cell's text, at most `width` visible columns (it is padded afterwards). */
  readonly cell: (row: DemoRow, width: number, now: number, style: Style) => string;
}

/** "why not" without repeating the status the STATUS column already shows. */
export function availabilityText(a: AvailabilityView | undefined): { ok: boolean | null; text: string } {
  if (a === undefined) return { ok: null, text: '…' };
  const reason = a.reason.replace(new RegExp(`^status is ${a.status}; `), '');
  return { ok: a.available, text: reason };
}

function platformCell(platform: DemoPlatform, row: DemoRow, width: number, style: Style): string {
  const p = row.presence;
  const v = p.platforms[platform];
  if (v === undefined) {
    if (!p.identity_only.includes(platform)) return '';
    return paint(style, '90', width < 6 ? 'id' : cut('identity only', width));
  }
  const mark = paint(style, v.stale ? '90' : COLORS[v.status], SYMBOL[v.status]);
  if (width < 6) return mark;
  const raw = cut(
    platform === 'device' ? `${Object.keys(v.devices).length} dev` : rawLabel(v.raw),
    width - 2,
  );
  return `${v.stale ? paint(style, '90', raw) : raw} ${mark}`;
}

function platformColumns(): Record<DemoPlatform, Column> {
  const out = {} as Record<DemoPlatform, Column>;
  for (const platform of DEMO_PLATFORMS) {
    out[platform] = {
      key: platform,
      widths: [18, 13, 2],
      title: (w) => (w < 6 ? SHORT[platform] : platform.toUpperCase()),
      cell: (r, w, _n, s) => platformCell(platform, r, w, s),
    };
  }
  return out;
}

const COLUMNS: Record<ColumnKey, Column> = {
  user: { key: 'user', widths: [9, 8], title: () => 'USER', cell: (r, w) => cut(r.presence.user_id, w) },
  status: {
    key: 'status',
    widths: [9],
    title: () => 'STATUS',
    cell: (r, _w, _n, s) => statusText(s, r.presence.status),
  },
  available: {
    key: 'available',
    widths: [30, 22, 16],
    title: () => 'AVAILABLE',
    cell: (r, w, _n, s) => {
      const a = availabilityText(r.availability);
      if (a.ok === null) return paint(s, '90', a.text);
      return `${a.ok ? paint(s, '32', '✓') : paint(s, '31', '✗')} ${cut(a.text, w - 2)}`;
    },
  },
  reachable: {
    key: 'reachable',
    widths: [28, 18, 12],
    title: (w) => (w < 13 ? 'REACH VIA' : 'REACHABLE VIA'),
    cell: (r, w) => cut(r.presence.reachable_via.join(',') || '—', w),
  },
  activity: {
    key: 'activity',
    widths: [16, 10],
    title: () => 'ACTIVITY',
    cell: (r, w) => {
      const p = r.presence;
      return cut(p.activity ?? (p.custom_status ? `“${p.custom_status.text}”` : ''), w);
    },
  },
  fresh: {
    key: 'fresh',
    widths: [5],
    title: () => 'FRESH',
    cell: (r, _w, now) => age(r.presence.observed_at, now),
  },
  ...platformColumns(),
};

/** Left to right on screen. */
const DISPLAY: readonly ColumnKey[] = [
  'user',
  'status',
  'available',
  'reachable',
  'activity',
  ...DEMO_PLATFORMS,
  'fresh',
];

/**
 * Most important first: what the API decides (status, availability and why, where to reach the
 * person) before the per-platform raw values it was decided from. Teams, Slack and Zoom carry
 * meetings and calls, so they come before Discord, WhatsApp and devices; LinkedIn never reports
 * presence, so it comes last.
 */
export const PRIORITY: readonly ColumnKey[] = [
  'user',
  'status',
  'available',
  'reachable',
  'teams',
  'slack',
  'zoom',
  'discord',
  'whatsapp',
  'device',
  'linkedin',
  'activity',
  'fresh',
];

const GAP = 1;

/**
 * Which columns fit in `width`, and how wide each is. First every column at its narrowest, in
 * priority order, until the next one does not fit (it and every column after it are dropped);
 * then the space left widens the kept columns, again in priority order. The user column is always
 * kept (a line narrower than it is cut).
 */
export function planColumns(
  width: number,
  columns: readonly { key: string; widths: readonly number[] }[] = PRIORITY.map((k) => COLUMNS[k]),
): Map<string, number> {
  const plan = new Map<string, number>();
  let used = 0;
  for (const c of columns) {
    const min = c.widths[c.widths.length - 1]!;
    const need = (plan.size === 0 ? 0 : GAP) + min;
    if (plan.size > 0 && used + need > width) break;
    plan.set(c.key, min);
    used += need;
  }
  let spare = width - used;
  for (const c of columns) {
    const now = plan.get(c.key);
    if (now === undefined) break;
    const wider = c.widths.find((w) => w - now <= spare);
    if (wider !== undefined && wider > now) {
      spare -= wider - now;
      plan.set(c.key, wider);
    }
  }
  return plan;
}

export interface Table {
  /** The heading line, then one line per row. */
  readonly lines: string[];
  /** Explains the marks (and the two-letter platform names, when columns are narrowed). */
  readonly legend: string;
}

/** One line per row, the columns of `planColumns(width)`; `Infinity` keeps every column at full width. */
export function renderTable(rows: readonly DemoRow[], now: number, style: Style, width = Infinity): Table {
  const plan = planColumns(width);
  const shown = DISPLAY.filter((k) => plan.has(k)).map((k) => ({ col: COLUMNS[k], w: plan.get(k)! }));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : pad(c, shown[i]!.w)))
      .join(' '.repeat(GAP))
      .trimEnd();
  const lines = [paint(style, '1', line(shown.map(({ col, w }) => fit(col.title(w), w))))];
  for (const r of rows) lines.push(line(shown.map(({ col, w }) => fit(col.cell(r, w, now, style), w))));
  const short = DEMO_PLATFORMS.filter((p) => (plan.get(p) ?? 99) < 6);
  const marks = (['online', 'idle', 'busy', 'away', 'offline'] as Status[])
    .map((s) => `${SYMBOL[s]}${s}`)
    .join(' ');
  const names = short.length === 0 ? '' : ` · ${short.map((p) => `${SHORT[p]} ${p}`).join(' ')}`;
  const cells =
    short.length === DEMO_PLATFORMS.length ? '' : " · cell: the platform's raw value, then its status";
  return { lines, legend: paint(style, '90', `${marks} · ✓ available ✗ not${names}${cells}`) };
}

/** Counts over every person, for the line above the table. */
export function summarize(rows: readonly AvailabilityView[]): string {
  const by: Record<Status, number> = { online: 0, idle: 0, busy: 0, away: 0, offline: 0 };
  let available = 0;
  for (const a of rows) {
    by[a.status] += 1;
    if (a.available) available += 1;
  }
  const n = (x: number): string => x.toLocaleString('en-US');
  const statuses = (Object.keys(by) as Status[]).map((s) => `${SYMBOL[s]} ${n(by[s])}`).join(' ');
  return `${n(available)}/${n(rows.length)} available ${statuses}`;
}

// ------------------------------------------------------------------ the screen

export interface FrameBudget {
  /** Table rows to draw. */
  readonly rows: number;
  /** Rows left out (shown as "+N more"). */
  readonly more: number;
  /** Recent change lines to draw. */
  readonly changes: number;
  /** Room for the legend and the two blank lines. */
  readonly extras: boolean;
}

/**
 * How the terminal's height is shared, top to bottom: the header (`headerLines` rows, as the
 * terminal wraps them), the table heading, its rows (and "+N more"), the legend and blank lines
 * when there is room, "recent changes:" and the change lines. The changes always keep a quarter
 * of the room (at least 3 lines) so the screen keeps moving; the table gets the rest.
 */
export function budget(height: number, headerLines: number, total: number): FrameBudget {
  const free = Math.max(0, height - headerLines - 2); // table heading, "recent changes:"
  const keep = Math.min(free, Math.max(3, Math.floor(free / 4)));
  const extras = free - keep - 3 >= Math.min(total, 1) + 1;
  let room = free - keep - (extras ? 3 : 0);
  if (total <= room) return { rows: total, more: 0, changes: free - total - (extras ? 3 : 0), extras };
  room = Math.max(0, room - 1); // the "+N more" line
  const rows = Math.min(total, room);
  return { rows, more: total - rows, changes: keep, extras };
}

export interface FrameParts {
  /** Printed whole, never cut: the terminal wraps them (the API URL, key and curl example). */
  readonly header: readonly string[];
  readonly table: Table;
  readonly budget: FrameBudget;
  /** Newest last. */
  readonly changes: readonly string[];
  readonly style: Style;
}

/**
 * The header's lines, whole, while they fit in `height` terminal rows as the terminal wraps them;
 * on a terminal too small even for them, cut to fit instead (never scrolled). `rows` is how many
 * terminal rows they take.
 */
export function composeHeader(
  header: readonly string[],
  width: number,
  height: number,
): { lines: string[]; rows: number; complete: boolean } {
  const lines: string[] = [];
  let rows = 0;
  for (const h of header) {
    const n = screenLines(h, width);
    if (rows + n > height) {
      if (rows < height) lines.push(fit(h, width));
      return { lines: lines.slice(0, height), rows: Math.min(height, rows + 1), complete: false };
    }
    lines.push(h);
    rows += n;
  }
  return { lines, rows, complete: true };
}

/**
 * The lines of one screen. Every line but the header's fits `width`; the whole frame takes at
 * most `height` terminal rows, so drawing it from the top never scrolls.
 */
export function composeFrame(p: FrameParts, width: number, height: number): string[] {
  const b = p.budget;
  const head = composeHeader(p.header, width, height);
  if (!head.complete) return head.lines;
  const out = head.lines;
  const rows = head.rows;
  const body: string[] = [];
  if (b.extras) body.push('');
  body.push(...p.table.lines.slice(0, b.rows + 1));
  if (b.more > 0) body.push(paint(p.style, '90', `+${b.more.toLocaleString('en-US')} more`));
  if (b.extras) body.push(p.table.legend, '');
  body.push('recent changes:');
  body.push(...p.changes.slice(Math.max(0, p.changes.length - b.changes)));
  for (const l of body) out.push(fit(l, width));
  return out.slice(0, out.length - Math.max(0, rows + body.length - height));
}

// ------------------------------------------------------------------ change lines

export interface ChangeLine {
  readonly at: number;
  readonly userId: string;
  readonly version: number;
  readonly previous: {
    readonly status: Status;
    readonly activity: Activity | null;
    readonly custom_status: CustomStatusView | null;
  };
  readonly current: {
    readonly status: Status;
    readonly activity: Activity | null;
    readonly custom_status: CustomStatusView | null;
  };
  readonly explain: string;
}

const quote = (c: CustomStatusView | null): string => (c === null ? 'none' : `“${c.text}”`);

/**
 * What changed, and only that: `● online → ⊘ busy (in_call)` when the status moves,
 * `⊘ busy: in_meeting → do_not_disturb` when only the activity does, and
 * `● online: custom status “Lunch” → none` for the custom status.
 */
export function describeChange(c: Pick<ChangeLine, 'previous' | 'current'>, style: Style): string {
  const { previous: a, current: b } = c;
  const parts: string[] = [];
  const act = (x: Activity | null): string => (x === null ? '' : ` (${x})`);
  if (a.status !== b.status) {
    parts.push(
      `${statusText(style, a.status)}${act(a.activity)} → ${statusText(style, b.status)}${act(b.activity)}`,
    );
  } else if (a.activity !== b.activity) {
    parts.push(
      `${statusText(style, b.status)}: ${a.activity ?? 'no activity'} → ${b.activity ?? 'no activity'}`,
    );
  }
  const customChanged =
    a.custom_status?.text !== b.custom_status?.text || a.custom_status?.emoji !== b.custom_status?.emoji;
  if (customChanged) {
    const lead = parts.length === 0 ? `${statusText(style, b.status)}: ` : '';
    parts.push(`${lead}custom status ${quote(a.custom_status)} → ${quote(b.custom_status)}`);
  }
  // Only the custom status's expiry moved (or nothing the demo shows): say so rather than print "x → x".
  if (parts.length === 0) parts.push(`${statusText(style, b.status)}: custom status expiry updated`);
  return parts.join('; ');
}

export function renderChange(c: ChangeLine, style: Style): string {
  const t = clockTime(c.at);
  return `${paint(style, '90', t)} ${pad(c.userId, 9)} v${String(c.version).padEnd(3)} ${describeChange(c, style)}  ${paint(style, '90', c.explain)}`;
}
