/**
 * @module http/routes/presence
 * Presence reads (batch, single, availability, history) and the manual override.
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import { AppError } from '../../core/errors';
import type { CustomStatus } from '../../core/presence';
import { parseIso, toIso } from '../../core/time';
import { toAvailability } from '../../normalizer/availability';
import { projectAvailability, projectHistory } from '../../privacy/project';
import type { AppDeps } from '../deps';
import { sendPrepared } from '../reply';
import { viewedAccess, viewerBatchJson, viewerPresenceJson, type ViewerReads } from '../viewer-reads';
import {
  Activity,
  BatchPresence,
  COMMON_ERRORS,
  CustomStatusInput,
  ErrorBody,
  IsoTime,
  MAX_BATCH,
  PresenceSchema,
  Status,
  UserId,
  UserIdList,
  splitIds,
} from '../schemas';

const DAY_MS = 86_400_000;

const AvailabilitySchema = z.object({
  available: z.boolean(),
  status: Status,
  activity: Activity.nullable(),
  best_channel: z.string().nullable(),
  reason: z.string().nullable().describe("null only for a viewer who may not see this user's details"),
  observed_at: IsoTime.nullable(),
  stale: z.boolean(),
});

const OverrideBody = z
  .strictObject({
    status: Status,
    activity: Activity.nullable().optional(),
    custom_status: CustomStatusInput.nullable().optional(),
    expires_at: z.iso.datetime({ offset: true }).optional(),
    ttl_seconds: z
      .number()
      .int()
      .min(1)
      .max(365 * 86_400)
      .optional(),
  })
  .refine((b) => b.expires_at === undefined || b.ttl_seconds === undefined, {
    message: 'give expires_at or ttl_seconds, not both',
  });

const Transition = z.object({
  version: z.number().int(),
  at: IsoTime,
  from: z.object({ status: Status, activity: Activity.nullable() }),
  to: z.object({ status: Status, activity: Activity.nullable() }),
  source: z.string().nullable(),
  platform: z
    .string()
    .nullable()
    .describe('the platform whose report caused it; "override"; null for an expiry'),
});

const HistoryQuery = z.strictObject({
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const UserParams = z.strictObject({ user_id: UserId });

function toCustomStatus(input: z.infer<typeof CustomStatusInput> | null | undefined): CustomStatus | null {
  if (input === null || input === undefined) return null;
  return {
    text: input.text,
    emoji: input.emoji ?? null,
    expiresAt: input.expires_at == null ? null : parseIso(input.expires_at),
  };
}

export function presenceRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { engine, clock } = deps;

  const unknownUser = (id: string): AppError => new AppError('not_found', `unknown user ${id}`);
  // Viewer tokens exist only with privacy wired; a request with one (req.viewer) is projected.
  const viewing: ViewerReads | null =
    deps.privacy === undefined ? null : { engine, privacy: deps.privacy.service, now: () => clock.now() };
  /** For a viewer: the user's access, or 404 exactly as for an id that does not exist. */
  const viewerAccess = (viewer: NonNullable<typeof viewing>, who: { userId: string }, id: string) => {
    const access = viewedAccess(viewer, who, id);
    if (access === null) throw unknownUser(id);
    return access;
  };

  r.get(
    '/v1/presence',
    {
      config: { scope: 'read', viewer: 'read' },
      schema: {
        summary: `Batch presence, up to ${MAX_BATCH} users`,
        tags: ['presence'],
        querystring: z.strictObject({ user_ids: UserIdList }),
        response: { 200: BatchPresence, ...COMMON_ERRORS },
      },
    },
    // Served from the engine's cached JSON: the hot read path concatenates prepared strings.
    (req, reply) =>
      sendPrepared(
        reply,
        req.viewer === null || viewing === null
          ? engine.getManyJson(req.query.user_ids)
          : viewerBatchJson(viewing, req.viewer, splitIds(req.query.user_ids), req.query.user_ids),
      ),
  );

  r.post(
    '/v1/presence/query',
    {
      config: { scope: 'read', viewer: 'read' },
      schema: {
        summary: 'Batch presence with the ids in the body',
        tags: ['presence'],
        body: z.strictObject({ user_ids: z.array(UserId).min(1).max(MAX_BATCH) }),
        response: { 200: BatchPresence, ...COMMON_ERRORS },
      },
    },
    (req, reply) =>
      sendPrepared(
        reply,
        req.viewer === null || viewing === null
          ? engine.getManyJson(req.body.user_ids)
          : viewerBatchJson(viewing, req.viewer, req.body.user_ids),
      ),
  );

  r.get(
    '/v1/presence/:user_id',
    {
      config: { scope: 'read', viewer: 'read' },
      schema: {
        summary: 'One presence',
        tags: ['presence'],
        params: UserParams,
        response: { 200: PresenceSchema, 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    (req, reply) => {
      const json =
        req.viewer === null || viewing === null
          ? engine.getJson(req.params.user_id)
          : viewerPresenceJson(viewing, req.viewer, req.params.user_id);
      if (json === undefined) throw unknownUser(req.params.user_id);
      sendPrepared(reply, json);
    },
  );

  r.get(
    '/v1/availability',
    {
      config: { scope: 'read', viewer: 'read' },
      schema: {
        summary: 'Can these people be reached now, and where?',
        tags: ['presence'],
        querystring: z.strictObject({ user_ids: UserIdList }),
        response: {
          200: z.object({
            availability: z.record(z.string(), AvailabilitySchema),
            unknown: z.array(z.string()),
          }),
          ...COMMON_ERRORS,
        },
      },
    },
    (req) => {
      const ids = [...new Set(splitIds(req.query.user_ids))];
      const viewer = req.viewer;
      const { presence, unknown } = engine.getMany(ids);
      const availability: Record<string, z.infer<typeof AvailabilitySchema>> = {};
      if (viewer === null || viewing === null) {
        for (const [id, p] of Object.entries(presence)) availability[id] = toAvailability(p);
        return { availability, unknown };
      }
      // A hidden user joins the unknown ones where an unknown id would be: in the order asked.
      const notSeen: string[] = [];
      for (const id of ids) {
        const p = presence[id];
        const access = p === undefined ? null : viewedAccess(viewing, viewer, id);
        const av = p === undefined || access === null ? null : projectAvailability(toAvailability(p), access);
        if (av === null) notSeen.push(id);
        else availability[id] = av;
      }
      return { availability, unknown: notSeen };
    },
  );

  r.put(
    '/v1/presence/:user_id/override',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'Set a manual override; it beats every platform until it expires or is cleared',
        description: 'Default expiry: 1 day for busy, 7 days otherwise.',
        tags: ['presence'],
        params: UserParams,
        body: OverrideBody,
        response: { 200: PresenceSchema, 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      const id = req.params.user_id;
      if (!engine.hasUser(id)) throw unknownUser(id);
      const now = clock.now();
      const b = req.body;
      let expiresAt: number;
      if (b.expires_at !== undefined) expiresAt = parseIso(b.expires_at);
      else if (b.ttl_seconds !== undefined) expiresAt = now + b.ttl_seconds * 1000;
      else expiresAt = now + (b.status === 'busy' ? DAY_MS : 7 * DAY_MS);
      if (expiresAt <= now) {
        throw new AppError('invalid_request', `expires_at must be in the future (now is ${toIso(now)})`, [
          { code: 'too_small', message: 'expires_at is in the past', path: ['body', 'expires_at'] },
        ]);
      }
      const customStatus = toCustomStatus(b.custom_status);
      await engine.setOverride(id, {
        status: b.status,
        activity: b.activity ?? null,
        customStatus,
        expiresAt,
      });
      sendPrepared(reply, engine.getJson(id) ?? 'null');
    },
  );

  r.delete(
    '/v1/presence/:user_id/override',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'Clear the override (idempotent)',
        tags: ['presence'],
        params: UserParams,
        response: { 204: z.null(), 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      if (!engine.hasUser(req.params.user_id)) throw unknownUser(req.params.user_id);
      await engine.clearOverride(req.params.user_id);
      await reply.code(204).send(null);
    },
  );

  r.get(
    '/v1/presence/:user_id/history',
    {
      config: { scope: 'read', viewer: 'read' },
      schema: {
        summary: 'Transitions, newest first',
        tags: ['presence'],
        params: UserParams,
        querystring: HistoryQuery,
        response: { 200: z.object({ transitions: z.array(Transition) }), 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req) => {
      const id = req.params.user_id;
      if (!engine.hasUser(id)) throw unknownUser(id);
      const access = req.viewer === null || viewing === null ? null : viewerAccess(viewing, req.viewer, id);
      const q = req.query;
      const since = q.since === undefined ? undefined : parseIso(q.since);
      const until = q.until === undefined ? undefined : parseIso(q.until);
      if (since !== undefined && until !== undefined && since > until) {
        throw new AppError('invalid_request', 'since must not be after until');
      }
      const rows = await engine.history(id, { since, until, limit: q.limit });
      const transitions = rows.map((t) => ({
        version: t.version,
        at: toIso(t.at),
        from: { status: t.fromStatus, activity: t.fromActivity },
        to: { status: t.toStatus, activity: t.toActivity },
        source: t.source,
        platform: t.platform,
      }));
      return { transitions: access === null ? transitions : (projectHistory(transitions, access) ?? []) };
    },
  );
}
