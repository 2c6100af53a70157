/**
 * @module core/signals
 * Inferred presence from activity signals (WhatsApp messages and read receipts, `POST /v1/signals`):
 * someone who just acted is online, then fades to idle and away, then the signal expires.
 */

import type { MappedPresence } from './connector';
import type { DecayStep } from './presence';

export const SIGNAL_KINDS = ['active', 'message', 'read', 'typing'] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];

/** Online 2 min, idle to 10 min, away to 1 h (PRESENCE_INFERRED_DECAY changes it). */
export const DEFAULT_DECAY: readonly DecayStep[] = [
  { status: 'online', untilMs: 2 * 60_000 },
  { status: 'idle', untilMs: 10 * 60_000 },
  { status: 'away', untilMs: 60 * 60_000 },
];

const LABELS: Record<SignalKind, string> = {
  active: 'activity',
  message: 'a message',
  read: 'a read receipt',
  typing: 'typing',
};

/** The inferred state one signal gives, seen at `at`. */
export function signalPresence(
  kind: SignalKind,
  at: number,
  decay: readonly DecayStep[] = DEFAULT_DECAY,
): MappedPresence {
  return {
    state: {
      status: 'online',
      activity: null,
      customStatus: null,
      source: 'inferred',
      raw: { kind },
      label: LABELS[kind],
    },
    devices: null,
    decay,
    at,
  };
}
