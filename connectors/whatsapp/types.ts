/**
 * @module connectors/whatsapp/types
 * WhatsApp Cloud API `messages` webhooks
 * (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages).
 */

export interface WhatsAppInboundMessage {
  readonly from: string;
  readonly id: string;
  /** unix seconds, as a string */
  readonly timestamp: string;
  readonly type: string;
}

export interface WhatsAppStatus {
  readonly id: string;
  /** sent, delivered, read or failed (and newer triggers such as played). */
  readonly status: string;
  readonly timestamp: string;
  readonly recipient_id: string;
}

export interface WhatsAppChangeValue {
  readonly messaging_product: 'whatsapp';
  readonly metadata: { readonly display_phone_number: string; readonly phone_number_id: string };
  readonly contacts?: readonly { readonly wa_id: string; readonly profile?: { readonly name?: string } }[];
  readonly messages?: readonly WhatsAppInboundMessage[];
  readonly statuses?: readonly WhatsAppStatus[];
}

export interface WhatsAppWebhook {
  readonly object: 'whatsapp_business_account';
  readonly entry: readonly {
    readonly id: string;
    readonly changes: readonly { readonly field: string; readonly value: WhatsAppChangeValue }[];
  }[];
}
