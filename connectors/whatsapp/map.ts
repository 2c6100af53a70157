/**
 * @module connectors/whatsapp/map
 * WhatsApp has no presence API, so presence is inferred (inferred tier, fading): a message from a
 * person means they were active when they sent it; a `read` status on a message we sent, or a
 * `played` status on a voice message, means they were active then. `sent`, `delivered` and
 * `failed` say nothing about the person and give nothing.
 *
 * Who a sighting is about, in Meta's words:
 * - Status triggers include "Your voice message is played by the WhatsApp user's device", and for
 *   a message sent to a group (`recipient_type: "group"`) `recipient_id` holds the group id while
 *   `recipient_participant_id` holds the participant's phone number: the participant is
 *   credited, never the group
 *   (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status/).
 * - A user who adopts a username may appear without a phone number: a message then carries
 *   `from_user_id` and a status `recipient_user_id`, the business-scoped user id (BSUID), which
 *   is in every messages webhook
 *   (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids/).
 *   An account can be linked under either id; the phone number is tried first.
 */

import type { MappedPresence } from '../../src/core/connector';
import type { DecayStep } from '../../src/core/presence';
import { DEFAULT_DECAY, signalPresence } from '../../src/core/signals';
import type { WhatsAppBatch, WhatsAppInboundMessage, WhatsAppStatus } from './types';

export interface WhatsAppSighting {
  /** The ids an account may be linked under, in the order they are tried. */
  readonly ids: readonly string[];
  /** Names this sighting across deliveries (a retry or a replay carries the same key). */
  readonly key: string;
  readonly presence: MappedPresence;
}

/** The statuses that show the person acting: reading a message, playing a voice message. */
const ACTIVE_STATUSES = new Set(['read', 'played']);

const seconds = (ts: string): number => (/^\d{1,12}$/.test(ts) ? Number(ts) * 1000 : Number.NaN);

const present = (ids: readonly (string | undefined)[]): string[] =>
  ids.filter((id): id is string => typeof id === 'string' && id !== '');

export function fromMessage(
  m: WhatsAppInboundMessage,
  decay: readonly DecayStep[] = DEFAULT_DECAY,
): WhatsAppSighting | null {
  const at = seconds(m.timestamp);
  const ids = present([m.from, m.from_user_id]);
  if (!Number.isFinite(at) || ids.length === 0) return null;
  return { ids, key: `message:${m.id}`, presence: signalPresence('message', at, decay) };
}

export function fromStatus(
  s: WhatsAppStatus,
  decay: readonly DecayStep[] = DEFAULT_DECAY,
): WhatsAppSighting | null {
  if (!ACTIVE_STATUSES.has(s.status)) return null;
  const at = seconds(s.timestamp);
  // In a group, recipient_id is the group itself: only the participant who read is credited.
  const ids =
    s.recipient_type === 'group'
      ? present([s.recipient_participant_id])
      : present([s.recipient_id, s.recipient_user_id]);
  if (!Number.isFinite(at) || ids.length === 0) return null;
  return {
    ids,
    // One wamid has one status of each kind per recipient (each group participant reads it).
    key: `status:${s.id}:${s.status}:${ids[0]!}`,
    presence: signalPresence('read', at, decay),
  };
}

/** Every sighting in a webhook batch (several entries and changes), in payload order. */
export function toWhatsAppSightings(
  hook: WhatsAppBatch,
  decay: readonly DecayStep[] = DEFAULT_DECAY,
): WhatsAppSighting[] {
  const out: WhatsAppSighting[] = [];
  for (const entry of hook.entry) {
    for (const change of entry.changes) {
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
