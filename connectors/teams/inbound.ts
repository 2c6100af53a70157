/**
 * @module connectors/teams/inbound
 * `POST /v1/inbound/teams` (change notifications) and `POST /v1/inbound/teams/lifecycle`
 * (lifecycle notifications) for Microsoft Graph presence subscriptions. No API key: Graph proves
 * itself with the subscription's `clientState`, which is checked on every item, because one POST
 * may carry items of several subscriptions.
 * - Validation handshake: `POST …?validationToken=…` is answered at once (Graph allows 10 s) with
 *   200, `text/plain` and the URL-decoded token, before any body is read.
 * - Notifications: 202 at once (Graph wants a reply within 3 s and flags slow endpoints); the
 *   items are processed afterwards, the changed users fetched in one batch by the connector.
 * - No item with a matching clientState: 401 with the contract's error body, nothing processed.
 * Docs: https://learn.microsoft.com/graph/change-notifications-delivery-webhooks ,
 * https://learn.microsoft.com/graph/webhooks-lifecycle
 */

import { z } from 'zod';

import { AppError } from '../../src/core/errors';
import { silentLog, type Log } from '../../src/core/log';
import type { InboundEndpoint, InboundHandler, InboundReply, InboundRequest, PushPort } from '../inbound';
import type { GraphChangeNotification, GraphLifecycleNotification } from './types';

/** What the routes need from the connector (TeamsConnector implements it). */
export interface TeamsNotificationSink {
  verifyClientState(value: unknown): boolean;
  handleChangeNotifications(items: readonly GraphChangeNotification[]): Promise<void>;
  handleLifecycleNotifications(items: readonly GraphLifecycleNotification[]): Promise<void>;
}

/** What a verified Graph POST pushes. */
export type TeamsPush =
  | { readonly kind: 'change'; readonly items: readonly GraphChangeNotification[] }
  | { readonly kind: 'lifecycle'; readonly items: readonly GraphLifecycleNotification[] };

export interface TeamsInboundOptions {
  /** Whether a notification's clientState is ours (the connector's subscriptions know it). */
  readonly verifyClientState: (value: unknown) => boolean;
  /** Takes the verified items; not awaited by the reply. */
  readonly port: PushPort<TeamsPush>;
  readonly log?: Log;
}

/** The sink as the handler's options: its clientState check, and its two handlers as the port. */
export function teamsInboundOptions(sink: TeamsNotificationSink, log?: Log): TeamsInboundOptions {
  return {
    verifyClientState: (value) => sink.verifyClientState(value),
    port: {
      push: (p) =>
        p.kind === 'change'
          ? sink.handleChangeNotifications(p.items)
          : sink.handleLifecycleNotifications(p.items),
    },
    ...(log === undefined ? {} : { log }),
  };
}

export const TEAMS_INBOUND_PATH = '/v1/inbound/teams';
export const TEAMS_LIFECYCLE_PATH = '/v1/inbound/teams/lifecycle';

/** Graph's envelope; items are checked one by one, so one odd item does not reject the rest. */
const Collection = z.object({ value: z.array(z.unknown()).max(10_000) });

const Text = z.string().max(2048);
/**
 * One change notification, with the documented types of what the connector reads
 * (https://learn.microsoft.com/en-us/graph/api/resources/changenotificationcollection): an item of another shape
 * is dropped even when its clientState is right, so it can start no fetch.
 */
const ChangeItem = z.object({
  subscriptionId: Text.optional(),
  clientState: z.string(),
  changeType: Text.optional(),
  resource: Text.optional(),
  subscriptionExpirationDateTime: Text.optional(),
  resourceData: z
    .object({ '@odata.type': Text.optional(), '@odata.id': Text.optional(), id: Text.optional() })
    .nullable()
    .optional(),
  tenantId: Text.optional(),
});
/** One lifecycle notification (https://learn.microsoft.com/en-us/graph/webhooks-lifecycle). */
const LifecycleItem = z.object({
  lifecycleEvent: Text,
  subscriptionId: Text,
  clientState: z.string(),
  subscriptionExpirationDateTime: Text.optional(),
  tenantId: Text.optional(),
});

type Item = Record<string, unknown>;

/** The validation handshake, answered before any body parser sees the request. */
function answerValidation(query: Readonly<Record<string, unknown>>): InboundReply | null {
  const token = query.validationToken;
  // The query value is already URL-decoded; Graph wants it back as plain text.
  return typeof token === 'string'
    ? { status: 200, body: token, contentType: 'text/plain; charset=utf-8' }
    : null;
}

export function teamsInbound(options: TeamsInboundOptions): InboundHandler {
  const log = options.log ?? silentLog;

  const collection = (request: InboundRequest, kind: string): unknown[] => {
    const parsed = Collection.safeParse(request.body);
    if (!parsed.success) {
      throw new AppError('invalid_request', `not a Microsoft Graph ${kind} notification collection`);
    }
    return parsed.data.value;
  };
  /** The items whose clientState is ours. */
  const ours = (items: readonly unknown[]): Item[] =>
    items.flatMap((raw) => {
      const item = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Item) : null;
      return item !== null && options.verifyClientState(item.clientState) ? [item] : [];
    });

  /**
   * verify: the items whose clientState is ours (401 when there is none); parse: those whose shape
   * is the documented one (the others are dropped and logged; the batch still gets its 202, since
   * Graph would only send the same items again).
   */
  const endpoint = <T>(
    kind: 'change' | 'lifecycle',
    path: string,
    summary: string,
    shape: z.ZodType<T>,
    push: (items: T[]) => TeamsPush,
  ): InboundEndpoint<T[]> => ({
    method: 'POST',
    path,
    summary,
    body: 'parsed',
    early: answerValidation,
    verify(request) {
      const items = collection(request, kind);
      const good = ours(items).length;
      const bad = items.length - good;
      if (bad > 0) {
        // The clientState itself is never logged: it is the shared secret.
        log.warn(
          { platform: 'teams', kind, rejected: bad, accepted: good, request_id: request.id },
          'Graph notification items with a wrong or missing clientState ignored',
        );
      }
      if (good === 0) {
        throw new AppError('unauthorized', 'no notification item carried the expected clientState');
      }
    },
    parse(request) {
      const good = ours(collection(request, kind));
      const out: T[] = [];
      for (const item of good) {
        const r = shape.safeParse(item);
        if (r.success) out.push(r.data);
      }
      if (out.length < good.length)
        log.warn(
          { platform: 'teams', kind, malformed: good.length - out.length, request_id: request.id },
          'Graph notification items of the wrong shape ignored',
        );
      return out;
    },
    handle(items) {
      // Not awaited: Graph wants its 2xx within 3 s; the fetch and the reports come after.
      options.port
        .push(push(items))
        .catch((e: unknown) =>
          log.error(
            { platform: 'teams', err: e },
            kind === 'change'
              ? 'processing Teams notifications failed'
              : 'processing Teams lifecycle notifications failed',
          ),
        );
      return { status: 202 };
    },
  });

  return {
    platform: 'teams',
    endpoints: [
      endpoint(
        'change',
        TEAMS_INBOUND_PATH,
        'Microsoft Graph presence change notifications (validationToken handshake, clientState per item)',
        ChangeItem as z.ZodType<GraphChangeNotification>,
        (items) => ({ kind: 'change', items }),
      ),
      endpoint(
        'lifecycle',
        TEAMS_LIFECYCLE_PATH,
        'Microsoft Graph lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed)',
        LifecycleItem as z.ZodType<GraphLifecycleNotification>,
        (items) => ({ kind: 'lifecycle', items }),
      ),
    ],
  };
}
