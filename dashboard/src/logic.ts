/**
 * @module dashboard/logic
 * The dashboard's own logic, pure (no DOM, no fetch, times handed in): how a presence becomes a
 * row, how rows are searched and filtered, how times, rates and raw platform values are written,
 * how /metrics text becomes the operations figures, and how a person's transitions become the
 * segments of their timeline chart. Unit-tested in test/unit/dashboard-logic.test.ts.
 */

import type { Presence, Status } from '../../src/client';
import { toAvailability } from '../../src/normalizer/availability';

/** The ladder, most present first (the chart's lanes, top to bottom). */
export const STATUS_ORDER: readonly Status[] = ['online', 'idle', 'busy', 'away', 'offline'];

/** Each status by shape as well as colour and text (the same marks as the demo's table). */
export const STATUS_MARK: Readonly<Record<Status, string>> = {
  online: '●',
  idle: '◐',
  busy: '⊘',
  away: '○',
  offline: '·',
};

/** A connector's health by shape and word. */
export const HEALTH_MARK: Readonly<Record<string, string>> = {
  ok: '✓',
  pending: '…',
  degraded: '▲',
  down: '✕',
  off: '–',
};

/** The platforms a row shows, in the demo's order of priority. */
export const ROW_PLATFORMS = ['teams', 'slack', 'zoom', 'discord', 'whatsapp', 'device', 'linkedin'] as const;

/** "now", "12 s", "4 min", "3 h", "2 d": how long ago, rounded down. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 1) return 'now';
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}

/** How long ago an ISO time was, at `now`; '—' for none. */
export function ageOf(iso: string | null | undefined, now: number): string {
  if (iso == null) return '—';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '—' : formatAge(now - t);
}

/** "14:03:07" in UTC, or the date too when it is not `now`'s day. */
export function formatTime(iso: string | null | undefined, now: number): string {
  if (iso == null) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  const d = new Date(t).toISOString();
  const day = d.slice(0, 10);
  const time = d.slice(11, 19);
  return day === new Date(now).toISOString().slice(0, 10) ? time : `${day} ${time}`;
}

/** A time until (or, negative, since) an ISO time: "in 12 s", "3 min ago". */
export function formatUntil(iso: string | null | undefined, now: number): string {
  if (iso == null) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  return t >= now ? `in ${formatAge(t - now)}` : `${formatAge(now - t)} ago`;
}

/** A rate per second, with one decimal under 10. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return '0/s';
  return perSecond < 10 ? `${perSecond.toFixed(1)}/s` : `${Math.round(perSecond).toLocaleString('en-US')}/s`;
}

/** A ratio as a percentage, one decimal. */
export function formatPercent(ratio: number): string {
  if (!Number.isFinite(ratio)) return '—';
  return `${(Math.round(ratio * 1000) / 10).toFixed(1)} %`;
}

/**
 * A platform's raw value in a few characters: a string as it is (`active`, `dnd`), an object by
 * its values (Teams `{ availability, activity }` → `Busy/InAMeeting`), nested objects summarized.
 */
export function formatRaw(raw: unknown, max = 40): string {
  const text = (() => {
    if (raw === null || raw === undefined) return '—';
    if (typeof raw === 'string') return raw;
    if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
    if (Array.isArray(raw)) return raw.map((v) => formatRaw(v, max)).join(',');
    if (typeof raw === 'object') {
      const parts = Object.values(raw as Record<string, unknown>)
        .filter((v) => v !== null && v !== undefined && v !== '' && typeof v !== 'object')
        .map((v) => String(v as string | number | boolean));
      return parts.length === 0 ? '{…}' : parts.join('/');
    }
    return '?';
  })();
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export interface PlatformCell {
  readonly platform: string;
  readonly raw: string;
  readonly status: Status;
  readonly stale: boolean;
}

/** One person as the people table shows them. */
export interface PersonRow {
  readonly userId: string;
  readonly status: Status;
  readonly activity: string | null;
  readonly customText: string | null;
  readonly available: boolean;
  readonly reason: string;
  readonly reachableVia: readonly string[];
  readonly platforms: readonly PlatformCell[];
  /** Age of the observation that decided the status (null: none). */
  readonly freshMs: number | null;
  readonly stale: boolean;
  readonly version: number;
}

export function toRow(p: Presence, now: number): PersonRow {
  const a = toAvailability(p);
  const platforms: PlatformCell[] = [];
  for (const name of ROW_PLATFORMS) {
    const v = p.platforms[name];
    if (v === undefined) continue;
    platforms.push({ platform: name, raw: formatRaw(v.raw), status: v.status, stale: v.stale });
  }
  for (const [name, v] of Object.entries(p.platforms)) {
    if ((ROW_PLATFORMS as readonly string[]).includes(name)) continue;
    platforms.push({ platform: name, raw: formatRaw(v.raw), status: v.status, stale: v.stale });
  }
  const observed = p.observed_at === null ? NaN : Date.parse(p.observed_at);
  return {
    userId: p.user_id,
    status: p.status,
    activity: p.activity,
    customText: p.custom_status?.text ?? null,
    available: a.available,
    reason: a.reason,
    reachableVia: p.reachable_via,
    platforms,
    freshMs: Number.isNaN(observed) ? null : Math.max(0, now - observed),
    stale: p.stale,
    version: p.version,
  };
}

export interface RowFilter {
  /** Part of the user id, any case. */
  readonly text: string;
  /** '' for any. */
  readonly status: Status | '';
  /** Has a report from this platform ('' for any). */
  readonly platform: string;
  /** Only people whose presence (or one platform's report) is stale. */
  readonly staleOnly: boolean;
}

export const NO_FILTER: RowFilter = { text: '', status: '', platform: '', staleOnly: false };

export function matches(row: PersonRow, f: RowFilter): boolean {
  const text = f.text.trim().toLowerCase();
  if (text !== '' && !row.userId.toLowerCase().includes(text)) return false;
  if (f.status !== '' && row.status !== f.status) return false;
  if (f.platform !== '' && !row.platforms.some((c) => c.platform === f.platform)) return false;
  if (f.staleOnly && !row.stale && !row.platforms.some((c) => c.stale)) return false;
  return true;
}

/** The rows that pass the filter, most present first, then by id. */
export function filterRows(rows: readonly PersonRow[], f: RowFilter): PersonRow[] {
  const rank = (s: Status): number => STATUS_ORDER.indexOf(s);
  return rows
    .filter((r) => matches(r, f))
    .sort(
      (a, b) => rank(a.status) - rank(b.status) || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0),
    );
}

/** How many people have each status. */
export function countByStatus(rows: readonly PersonRow[]): Record<Status, number> {
  const out: Record<Status, number> = { online: 0, idle: 0, busy: 0, away: 0, offline: 0 };
  for (const r of rows) out[r.status] += 1;
  return out;
}

/**
 * The samples of a Prometheus text exposition, by name with its labels as written
 * (`http_requests_total{method="GET",…}`); comments and blank lines skipped.
 */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    if (cut <= 0) continue;
    const value = Number(line.slice(cut + 1));
    if (!Number.isNaN(value)) out.set(line.slice(0, cut).trim(), value);
  }
  return out;
}

/** The operations figures, as /metrics names them (`presence_ops_<name>`). */
export const FIGURES = [
  { name: 'tracked_users', label: 'Tracked users', format: (n: number) => n.toLocaleString('en-US') },
  { name: 'changes_per_second', label: 'Changes', format: formatRate },
  { name: 'heartbeats_per_second', label: 'Heartbeats', format: formatRate },
  {
    name: 'stream_connections',
    label: 'Stream connections',
    format: (n: number) => n.toLocaleString('en-US'),
  },
  { name: 'stale_ratio', label: 'Stale', format: formatPercent },
  { name: 'flaps_recent', label: 'Flaps (10 min)', format: (n: number) => n.toLocaleString('en-US') },
  { name: 'flaps_total', label: 'Flaps (since start)', format: (n: number) => n.toLocaleString('en-US') },
  {
    name: 'missed_device_pings_total',
    label: 'Missed device pings',
    format: (n: number) => n.toLocaleString('en-US'),
  },
  { name: 'webhook_backlog', label: 'Webhook backlog', format: (n: number) => n.toLocaleString('en-US') },
] as const;

export type FigureName = (typeof FIGURES)[number]['name'];

/** The figures out of /metrics; a figure the text lacks is absent. */
export function figuresFrom(metrics: ReadonlyMap<string, number>): Partial<Record<FigureName, number>> {
  const out: Partial<Record<FigureName, number>> = {};
  for (const f of FIGURES) {
    const v = metrics.get(`presence_ops_${f.name}`);
    if (v !== undefined) out[f.name] = v;
  }
  return out;
}

/** One transition of a person's history, as `GET /v1/presence/{id}/history` answers it. */
export interface Transition {
  readonly version: number;
  readonly at: string;
  readonly from: { readonly status: Status; readonly activity: string | null };
  readonly to: { readonly status: Status; readonly activity: string | null };
  readonly source: string | null;
  readonly platform: string | null;
}

export interface Segment {
  readonly start: number;
  readonly end: number;
  readonly status: Status;
  readonly activity: string | null;
}

/**
 * The person's status over [from, to] as segments, from their transitions (any order) and the
 * status they have now: before the first transition in the window they were in its `from`
 * state; with no transition in the window, in the current one throughout.
 */
export function timelineSegments(
  transitions: readonly Transition[],
  from: number,
  to: number,
  current: { status: Status; activity: string | null },
): Segment[] {
  const sorted = transitions
    .map((t) => ({ t, at: Date.parse(t.at) }))
    .filter((x) => !Number.isNaN(x.at))
    .sort((a, b) => a.at - b.at || a.t.version - b.t.version);
  const before = sorted.filter((x) => x.at <= from);
  const inside = sorted.filter((x) => x.at > from && x.at <= to);
  let state: { status: Status; activity: string | null } =
    before.length > 0 ? before[before.length - 1]!.t.to : inside.length > 0 ? inside[0]!.t.from : current;
  const out: Segment[] = [];
  let start = from;
  for (const { t, at } of inside) {
    if (at > start) out.push({ start, end: at, ...state });
    state = t.to;
    start = at;
  }
  if (to > start) out.push({ start, end: to, ...state });
  // Neighbours with the same state are one segment.
  const merged: Segment[] = [];
  for (const s of out) {
    const last = merged[merged.length - 1];
    if (
      last !== undefined &&
      last.status === s.status &&
      last.activity === s.activity &&
      last.end === s.start
    )
      merged[merged.length - 1] = { ...last, end: s.end };
    else merged.push(s);
  }
  return merged;
}

/** Evenly spaced tick times for a time axis, on whole minutes, hours or days as fits. */
export function timeTicks(from: number, to: number, most = 6): number[] {
  const span = Math.max(1, to - from);
  const steps = [60_000, 300_000, 900_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000, 86_400_000];
  const step = steps.find((s) => span / s <= most) ?? steps[steps.length - 1]!;
  const out: number[] = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) out.push(t);
  return out;
}

/** Ids in pages of at most `size` (one stream connection each). */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** What the sign-in form says when the service refuses a key. */
export function refusalText(status: number): string {
  if (status === 401) return 'This key was refused: it is not a valid API key (or it was revoked).';
  if (status === 403) return 'This key may not read presence: it needs the read scope.';
  if (status === 429) return 'Too many attempts: wait a moment and try again.';
  return `The service answered ${status}; try again.`;
}
