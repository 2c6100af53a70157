/**
 * @module connectors/discord/map
 * Discord → ladder. Pure. `dnd` is chosen by the person, so it is busy + do_not_disturb in the
 * manual tier; `client_status` becomes per-device entries; a Custom activity (type 4) becomes
 * the custom status; other activities stay in `raw`.
 */

import type { MappedPresence } from '../../src/core/connector';
import type { Activity, CustomStatus, NormalizedState, Source, Status } from '../../src/core/presence';
import type { DiscordClientStatus, DiscordPresence } from './types';

const STATUS: Readonly<Record<string, readonly [Status, Activity | null, Source]>> = {
  online: ['online', null, 'app'],
  idle: ['idle', null, 'app'],
  dnd: ['busy', 'do_not_disturb', 'manual'],
  offline: ['offline', null, 'app'],
  invisible: ['offline', null, 'app'],
};

export const DISCORD_STATUS_VALUES = Object.keys(STATUS);
const DEVICES: readonly (keyof DiscordClientStatus)[] = ['desktop', 'mobile', 'web', 'vr'];
const CUSTOM = 4;

function customStatus(p: DiscordPresence): CustomStatus | null {
  const custom = p.activities?.find((a) => a.type === CUSTOM);
  if (custom === undefined) return null;
  const text = custom.state ?? '';
  const emoji = custom.emoji?.name ?? null;
  if (text === '' && emoji === null) return null;
  return { text, emoji, expiresAt: null };
}

function state(status: string, cs: CustomStatus | null, raw: unknown, label: string): NormalizedState | null {
  if (!Object.hasOwn(STATUS, status)) return null; // "constructor" is not a Discord status
  const s = STATUS[status]!;
  return { status: s[0], activity: s[1], source: s[2], customStatus: cs, raw, label };
}

export function toDiscordPresence(p: DiscordPresence, _now: number): MappedPresence | null {
  const cs = customStatus(p);
  const raw = {
    status: p.status,
    client_status: p.client_status ?? {},
    activities: (p.activities ?? []).map((a) => ({
      type: a.type,
      name: a.name,
      ...(a.state ? { state: a.state } : {}),
    })),
  };
  const top = state(p.status, cs, raw, p.status);
  if (top === null) return null;
  const devices: Record<string, NormalizedState> = {};
  for (const d of DEVICES) {
    const value = p.client_status?.[d];
    if (value === undefined) continue; // absent = offline or invisible on that device
    const ds = state(value, null, value, `${d} ${value}`);
    if (ds !== null) devices[d] = ds;
  }
  return { state: top, devices };
}
