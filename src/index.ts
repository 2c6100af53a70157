/**
 * @module index
 * The package's main entry (`presence-aggregator`): what a consumer of the change webhooks needs,
 * and nothing else. Its JavaScript loads only `node:crypto` (through webhooks/sign and
 * core/clock), never the service, its HTTP stack or its dependencies, so it works in a
 * project that installs this package for verification alone. The service itself is the
 * `presence` command.
 */

import { verifyWebhook as verify, type VerifyOptions, type WebhookHeaders } from './webhooks/sign';
import type { WebhookEvent } from './types';

export { WebhookVerificationError, type VerifyOptions, type WebhookHeaders } from './webhooks/sign';
export type * from './types';

/**
 * Verifies a change webhook (Standard Webhooks v1) and returns its parsed body, typed as the
 * events this service sends. `rawBody` is the body exactly as received, before any JSON parsing;
 * `secret` is the endpoint's `whsec_…` secret. Throws `WebhookVerificationError` naming the
 * failed check (a missing header, a timestamp more than 5 minutes away, no matching signature,
 * a body that is not JSON).
 */
export function verifyWebhook<T = WebhookEvent>(
  secret: string,
  rawBody: string | Buffer,
  headers: WebhookHeaders,
  options?: VerifyOptions,
): T {
  return verify<T>(secret, rawBody, headers, options);
}
