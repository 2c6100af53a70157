import type { NormalizedState, Observation } from '../../src/core/presence';

export const T0 = Date.UTC(2026, 10, 23, 14, 0, 0);

/** Slack's `active` as its mapper gives it (online, app tier, nothing else), `fields` replaced. */
export function slackActive(fields: Partial<NormalizedState> = {}): NormalizedState {
  return {
    status: 'online',
    activity: null,
    customStatus: null,
    source: 'app',
    raw: 'active',
    label: 'active',
    ...fields,
  };
}

/** An observation with sensible defaults: live for five minutes from `observedAt`. */
export function obs(fields: Partial<Observation> = {}): Observation {
  const observedAt = fields.observedAt ?? T0;
  return {
    platform: 'slack',
    device: '',
    ...slackActive(),
    decay: null,
    changedAt: fields.changedAt ?? observedAt,
    expiresAt: observedAt + 300_000,
    ...fields,
    observedAt,
  };
}
