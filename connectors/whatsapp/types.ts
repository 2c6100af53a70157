/**
 * @module connectors/whatsapp/types
 * WhatsApp Cloud API `messages` webhooks
 * (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages),
 * as zod schemas: the route checks a delivery against them, so the mapping only ever sees the
 * documented types. Only what the mapping reads is checked; Meta adds fields freely.
 */

import { z } from 'zod';

const Id = z.string().min(1).max(256);
/** unix seconds, as a string */
const Timestamp = z.string().regex(/^\d{1,12}$/);

/** One item of `value.messages`. `from` (the phone number) may be absent for a username user. */
export const WhatsAppInboundMessageSchema = z.object({
  id: Id,
  from: Id.optional(),
  /** The business-scoped user id (BSUID). */
  from_user_id: Id.optional(),
  timestamp: Timestamp,
  type: z.string().max(64).optional(),
});
export type WhatsAppInboundMessage = z.infer<typeof WhatsAppInboundMessageSchema>;

/** One item of `value.statuses` (…/webhooks/reference/messages/status/). */
export const WhatsAppStatusSchema = z.object({
  id: Id,
  /** sent, delivered, read, played or failed. */
  status: z.string().min(1).max(64),
  timestamp: Timestamp,
  /** The user's phone number, or the group id for a message sent to a group. */
  recipient_id: Id.optional(),
  recipient_user_id: Id.optional(),
  recipient_type: z.string().max(32).optional(),
  /** For a group: the phone number of the participant the status is about. */
  recipient_participant_id: Id.optional(),
});
export type WhatsAppStatus = z.infer<typeof WhatsAppStatusSchema>;

/**
 * The `value` of a `messages` change. `messages` and `statuses` are arrays of anything here: each
 * item is checked on its own, so one odd item does not reject the rest of a batch.
 */
export const WhatsAppMessagesValueSchema = z.object({
  messaging_product: z.string(),
  messages: z.array(z.unknown()).max(10_000).optional(),
  statuses: z.array(z.unknown()).max(10_000).optional(),
});

/** The envelope. Changes of other fields (account updates, templates, …) are not read. */
export const WhatsAppWebhookSchema = z.object({
  object: z.literal('whatsapp_business_account'),
  entry: z
    .array(
      z.object({
        id: z.string(),
        changes: z.array(z.object({ field: z.string(), value: z.unknown() })).max(1000),
      }),
    )
    .max(1000),
});

/** The documented `value` of a `messages` change. */
export interface WhatsAppChangeValue {
  readonly messaging_product: 'whatsapp';
  readonly metadata: { readonly display_phone_number: string; readonly phone_number_id: string };
  readonly contacts?: readonly {
    readonly wa_id?: string;
    readonly user_id?: string;
    readonly profile?: { readonly name?: string; readonly username?: string };
  }[];
  readonly messages?: readonly WhatsAppInboundMessage[];
  readonly statuses?: readonly WhatsAppStatus[];
}

/** The documented webhook, as Meta sends it. */
export interface WhatsAppWebhook {
  readonly object: 'whatsapp_business_account';
  readonly entry: readonly {
    readonly id: string;
    readonly changes: readonly { readonly field: string; readonly value: WhatsAppChangeValue }[];
  }[];
}

/** What the mapping reads of a webhook: a `WhatsAppWebhook`, or one whose items passed their schema. */
export interface WhatsAppBatch {
  readonly entry: readonly {
    readonly changes: readonly {
      readonly field: string;
      readonly value: {
        readonly messages?: readonly WhatsAppInboundMessage[];
        readonly statuses?: readonly WhatsAppStatus[];
      };
    }[];
  }[];
}
