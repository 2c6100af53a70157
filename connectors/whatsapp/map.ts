/**
 * @module connectors/whatsapp/map
 * WhatsApp has no presence API, so presence is inferred (inferred tier, fading): a message from a
 * person means they were active when they sent it; a `read` status on a message we sent means
 * they were active when they read it. `sent`, `delivered` and `failed` say nothing about the
 * person and give nothing.
 */

import type { MappedPresence } from '../../src/core/connector';
import type { DecayStep } from '../../src/core/presence';
import { DEFAULT_DECAY, signalPresence } from '../../src/core/signals';
import type { WhatsAppInboundMessage, WhatsAppStatus, WhatsAppWebhook } from './types';

export interface WhatsAppSighting {
  readonly waId: string;
  readonly presence: MappedPresence;
}

const seconds = (ts: string): number => Number.parseInt(ts, 10) * 1000;

export function fromMessage(
  m: WhatsAppInboundMessage,
  decay: readonly DecayStep[] = DEFAULT_DECAY,
): WhatsAppSighting | null {
  const at = seconds(m.timestamp);
  return Number.isFinite(at) ? { waId: m.from, presence: signalPresence('message', at, decay) } : null;
}

export function fromStatus(
  s: WhatsAppStatus,
  decay: readonly DecayStep[] = DEFAULT_DECAY,
): WhatsAppSighting | null {
  if (s.status !== 'read') return null;
  const at = seconds(s.timestamp);
  return Number.isFinite(at) ? { waId: s.recipient_id, presence: signalPresence('read', at, decay) } : null;
}

/** Every sighting in a webhook batch (several entries and changes), in payload order. */
export function toWhatsAppSightings(
  hook: WhatsAppWebhook,
  decay: readonly DecayStep[] = DEFAULT_DECAY,
): WhatsAppSighting[] {
  const out: WhatsAppSighting[] = [];
  for (const entry of hook.entry ?? []) {
    for (const change of entry.changes ?? []) {
      if (change.field !== 'messages') continue;
      for (const m of change.value.messages ?? []) {
        const s = fromMessage(m, decay);
        if (s !== null) out.push(s);
      }
      for (const st of change.value.statuses ?? []) {
        const s = fromStatus(st, decay);
        if (s !== null) out.push(s);
      }
    }
  }
  return out;
}
