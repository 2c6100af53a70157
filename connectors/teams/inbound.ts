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

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';

import { AppError } from '../../src/core/errors';
import { silentLog, type Log } from '../../src/core/log';
import type { GraphChangeNotification, GraphLifecycleNotification } from './types';

/** What the routes need from the connector (TeamsConnector implements it). */
export interface TeamsNotificationSink {
  verifyClientState(value: unknown): boolean;
  handleChangeNotifications(items: readonly GraphChangeNotification[]): Promise<void>;
  handleLifecycleNotifications(items: readonly GraphLifecycleNotification[]): Promise<void>;
}

export interface TeamsInboundDeps {
  readonly connector: TeamsNotificationSink;
  readonly log?: Log;
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

/** The validation handshake, answered in onRequest so that no body parser ever sees it. */
function answerValidation(req: FastifyRequest, reply: FastifyReply, done: () => void): void {
  const token = (req.query as Record<string, unknown> | undefined)?.validationToken;
  if (typeof token === 'string') {
    // Fastify has already URL-decoded the query value; Graph wants it back as plain text.
    void reply.code(200).type('text/plain; charset=utf-8').send(token);
    return;
  }
  done();
}

export function teamsInboundRoutes(app: FastifyInstance, deps: TeamsInboundDeps): void {
  const log = deps.log ?? silentLog;

  /**
   * The items whose clientState is ours (401 when there is none) and whose shape is the
   * documented one (the others are dropped and logged; the batch still gets its 202, since Graph
   * would only send the same items again).
   */
  const verified = <T>(req: FastifyRequest, kind: string, shape: z.ZodType<T>): T[] => {
    const parsed = Collection.safeParse(req.body);
    if (!parsed.success) {
      throw new AppError('invalid_request', `not a Microsoft Graph ${kind} notification collection`);
    }
    const good: Item[] = [];
    let bad = 0;
    for (const raw of parsed.data.value) {
      const item = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Item) : null;
      if (item !== null && deps.connector.verifyClientState(item.clientState)) good.push(item);
      else bad += 1;
    }
    if (bad > 0) {
      // The clientState itself is never logged: it is the shared secret.
      log.warn(
        { platform: 'teams', kind, rejected: bad, accepted: good.length, request_id: req.id },
        'Graph notification items with a wrong or missing clientState ignored',
      );
    }
    if (good.length === 0) {
      throw new AppError('unauthorized', 'no notification item carried the expected clientState');
    }
    const out: T[] = [];
    for (const item of good) {
      const r = shape.safeParse(item);
      if (r.success) out.push(r.data);
    }
    if (out.length < good.length)
      log.warn(
        { platform: 'teams', kind, malformed: good.length - out.length, request_id: req.id },
        'Graph notification items of the wrong shape ignored',
      );
    return out;
  };

  const schema = (summary: string) => ({
    schema: { summary, tags: ['inbound'], security: [], hide: false },
    onRequest: answerValidation,
  });

  app.post(
    TEAMS_INBOUND_PATH,
    schema('Microsoft Graph presence change notifications (validationToken handshake, clientState per item)'),
    async (req, reply) => {
      const items: GraphChangeNotification[] = verified(req, 'change', ChangeItem);
      // Not awaited: Graph wants its 2xx within 3 s; the fetch and the reports come after.
      deps.connector
        .handleChangeNotifications(items)
        .catch((e: unknown) =>
          log.error({ platform: 'teams', err: e }, 'processing Teams notifications failed'),
        );
      return reply.code(202).send();
    },
  );

  app.post(
    TEAMS_LIFECYCLE_PATH,
    schema('Microsoft Graph lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed)'),
    async (req, reply) => {
      const items: GraphLifecycleNotification[] = verified(req, 'lifecycle', LifecycleItem);
      deps.connector
        .handleLifecycleNotifications(items)
        .catch((e: unknown) =>
          log.error({ platform: 'teams', err: e }, 'processing Teams lifecycle notifications failed'),
        );
      return reply.code(202).send();
    },
  );
}
