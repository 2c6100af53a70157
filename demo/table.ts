/**
 * @module demo/table
 * Renders the demo's live table and change lines. Pure: presence objects in, lines out, so it is
 * tested without a terminal.
 */

import type { PresenceView } from '../src/normalizer/view';
import type { Status } from '../src/core/presence';

export const DEMO_PLATFORMS = [
  'slack',
  'teams',
  'discord',
  'zoom',
  'whatsapp',
  'linkedin',
  'device',
] as const;

const ESC = '\u001b[';
const COLORS: Record<Status, string> = { online: '32', idle: '33', busy: '31', away: '35', offline: '90' };
const SYMBOL: Record<Status, string> = { online: '●', idle: '◐', busy: '⊘', away: '○', offline: '·' };

export interface Style {
  readonly color: boolean;
}

const paint = (style: Style, code: string, text: string): string =>
  style.color ? `${ESC}${code}m${text}${ESC}0m` : text;
// eslint-disable-next-line no-control-regex -- stripping ANSI colour codes is the point
const visible = (text: string): number => text.replace(/\u001b\[[0-9;]*m/g, '').length;
const pad = (text: string, width: number): string => text + ' '.repeat(Math.max(0, width - visible(text)));
const cut = (text: string, width: number): string =>
  text.length <= width ? text : `${text.slice(0, width - 1)}…`;

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
    if (shown === width - 1) return `${out}…${ESC}0m`;
    out += ch;
    shown += 1;
    i += ch.length;
  }
  return out;
}

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
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h`;
}

function status(style: Style, s: Status, width = 8): string {
  return pad(paint(style, COLORS[s], `${SYMBOL[s]} ${s}`), width);
}

const CELL = 18;

/** One line per user: aggregate, activity, each platform's raw → normalized, freshness, reachable_via. */
export function renderTable(rows: readonly PresenceView[], now: number, style: Style): string[] {
  const head = [
    pad('USER', 9),
    pad('STATUS', 10),
    pad('ACTIVITY', 15),
    ...DEMO_PLATFORMS.map((p) => pad(p.toUpperCase(), CELL)),
    pad('FRESH', 6),
    'REACHABLE VIA',
  ].join(' ');
  const lines = [paint(style, '1', head)];
  for (const p of rows) {
    const cells = DEMO_PLATFORMS.map((platform) => {
      const v = p.platforms[platform];
      if (v === undefined) {
        const text = p.identity_only.includes(platform) ? 'identity only' : '';
        return pad(paint(style, '90', text), CELL);
      }
      const raw = cut(
        platform === 'device' ? `${Object.keys(v.devices).length} dev` : rawLabel(v.raw),
        CELL - 3,
      );
      const mark = paint(style, COLORS[v.status], SYMBOL[v.status]);
      return pad(`${v.stale ? paint(style, '90', raw) : raw} ${mark}`, CELL);
    });
    lines.push(
      [
        pad(cut(p.user_id, 9), 9),
        status(style, p.status, 10),
        pad(cut(p.activity ?? (p.custom_status ? `“${p.custom_status.text}”` : ''), 15), 15),
        ...cells,
        pad(age(p.observed_at, now), 6),
        p.reachable_via.join(',') || '—',
      ].join(' '),
    );
  }
  lines.push(
    paint(
      style,
      '90',
      `legend: ${(['online', 'idle', 'busy', 'away', 'offline'] as Status[]).map((s) => `${SYMBOL[s]} ${s}`).join('  ')}   cell = platform's raw value, then its normalized status`,
    ),
  );
  return lines;
}

export interface ChangeLine {
  readonly at: number;
  readonly userId: string;
  readonly version: number;
  readonly from: Status;
  readonly to: Status;
  readonly activity: string | null;
  readonly explain: string;
}

export function renderChange(c: ChangeLine, style: Style): string {
  const t = new Date(c.at).toISOString().slice(11, 19);
  const act = c.activity === null ? '' : ` (${c.activity})`;
  return `${paint(style, '90', t)} ${pad(c.userId, 8)} v${String(c.version).padEnd(3)} ${status(style, c.from, 9)} → ${status(style, c.to, 9)}${act}  ${paint(style, '90', c.explain)}`;
}
