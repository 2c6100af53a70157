import type { Observation } from '../../src/core/presence';

export const T0 = Date.UTC(2026, 10, 23, 14, 0, 0);

/** An observation with sensible defaults: live for five minutes from `observedAt`. */
export function obs(fields: Partial<Observation> = {}): Observation {
  const observedAt = fields.observedAt ?? T0;
  return {
    platform: 'slack',
    device: '',
    status: 'online',
    activity: null,
    customStatus: null,
    source: 'app',
    raw: 'active',
    label: 'active',
    decay: null,
    changedAt: fields.changedAt ?? observedAt,
    expiresAt: observedAt + 300_000,
    ...fields,
    observedAt,
  };
}
