/**
 * @module webhooks/endpoints
 * Endpoint records as the service loads and shows them: reading them back at start, their API
 * view, and URLs fit for logs.
 */

import type { TokenVault } from '../oauth/vault';
import type { Log } from '../core/log';
import { toIso, toIsoOrNull } from '../core/time';
import type { EndpointView } from './schema';
import { openEndpoint, sealPlainSecrets } from './secrets';
import { literalTargetRefusal } from './ssrf';
import type { AsyncWebhookStore, EndpointRecord } from '../core/ports';

/** Shows the scheme, host and path of a URL, never its query (it may hold a token). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

/** The stored endpoints with their secrets opened, sealing first any stored in plain text. */
export async function loadEndpoints(
  store: AsyncWebhookStore,
  vault: TokenVault,
  log: Log,
): Promise<EndpointRecord[]> {
  // Rows from before secrets were sealed (migrations/0007) are converted once, here.
  const converted = await sealPlainSecrets(store, vault);
  if (converted.sealed > 0) {
    log.info(
      { endpoints: converted.sealed, wal_truncated: converted.walTruncated },
      'sealed webhook signing secrets stored in plain text by an earlier version',
    );
  }
  return (await store.endpoints()).map((stored) => openEndpoint(vault, stored));
}

/** Warns at start about an enabled endpoint whose deliveries will all be refused. */
export function warnIfRefused(ep: EndpointRecord, allowPrivateTargets: boolean, log: Log): void {
  const refused = allowPrivateTargets ? null : literalTargetRefusal(ep.url);
  if (refused !== null && ep.enabled) {
    // Saved while private targets were allowed: every attempt is refused until it is fixed.
    log.warn(
      { endpoint_id: ep.id, url: redactUrl(ep.url), reason: refused },
      'webhook endpoint points at a private address and WEBHOOK_ALLOW_PRIVATE_TARGETS is off: its deliveries are refused',
    );
  }
}

/** An endpoint as the API shows it: never its secrets, only when a rotation's window ends. */
export function endpointView(ep: EndpointRecord, now: number): EndpointView {
  const rotating = ep.previousSecret !== null && ep.previousExpiresAt !== null && now < ep.previousExpiresAt;
  return {
    id: ep.id,
    url: ep.url,
    events: ep.events === null ? null : [...ep.events],
    user_ids: ep.userIds === null ? null : [...ep.userIds],
    coalesce_ms: ep.coalesceMs,
    enabled: ep.enabled,
    disabled_reason: ep.disabledReason,
    disabled_at: toIsoOrNull(ep.disabledAt),
    failing_since: toIsoOrNull(ep.failingSince),
    previous_secret_expires_at: rotating ? toIso(ep.previousExpiresAt!) : null,
    created_at: toIso(ep.createdAt),
    updated_at: toIso(ep.updatedAt),
  };
}
