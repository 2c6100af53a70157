/**
 * @module webhooks
 * Change webhooks (docs/api.md): the facade the HTTP layer and the composition root use, the
 * input schemas the routes can share, and `verifyWebhook` for consumers.
 */

export {
  WebhookService,
  type ParsedWebhookOperations,
  type WebhookServiceOptions,
  type WebhookStats,
} from './service';
export {
  createEndpointSchema,
  deliveriesPageSchema,
  deliveriesQuerySchema,
  endpointReplySchema,
  replaySchema,
  updateEndpointSchema,
  DELIVERY_STATUSES,
  EVENT_TYPES,
  type AttemptView,
  type CreateEndpointInput,
  type DeliveriesPage,
  type DeliveriesQuery,
  type DeliveryStatus,
  type DeliveryView,
  type EndpointView,
  type EndpointWithSecret,
  type EventType,
  type ReplayInput,
  type UpdateEndpointInput,
} from './schema';
export {
  sign,
  signatureHeader,
  verifyWebhook,
  WebhookVerificationError,
  type VerifyOptions,
  type WebhookHeaders,
  type WebhookPayload,
} from './sign';
export { DEFAULT_RETRY_SCHEDULE } from './retry';
export type { ClaimSettings } from './dispatcher';
export { checkEndpointUrl, privateAddressReason } from './ssrf';
