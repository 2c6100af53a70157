/**
 * @module http/routes/ops
 * Liveness, readiness, metrics and the connector list.
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import { z } from 'zod';

import { toIso, toIsoOrNull } from '../../core/time';
import { STORE_FAULT_REASONS } from '../../store/faults';
import type { AppDeps } from '../deps';
import { COMMON_ERRORS, IsoTime, RealPlatform } from '../schemas';

const ConnectorSchema = z.object({
  platform: RealPlatform,
  display_name: z.string(),
  enabled: z.boolean(),
  simulated: z.boolean(),
  mode: z.enum(['poll', 'push', 'gateway']),
  presence: z
    .enum(['native', 'inferred', 'none'])
    .describe('none: the platform has no presence API (identity only)'),
  capabilities: z.object({
    activities: z.boolean(),
    custom_status: z.boolean(),
    devices: z.boolean(),
    manual_states: z.boolean(),
    identity: z.boolean(),
  }),
  role: z
    .enum(['presence', 'identity'])
    .describe('identity: establishes who a person is (OpenID Connect) and never sets presence'),
  health: z
    .enum(['ok', 'pending', 'degraded', 'down', 'off'])
    .describe('pending: running but not yet succeeded once (no poll answered, no push received)'),
  last_success_at: IsoTime.nullable(),
  last_error: z.string().nullable(),
  next_poll_at: IsoTime.nullable(),
  notes: z.string(),
});

const NotReady = z.object({
  ready: z.literal(false),
  reason: z
    .enum(['database_not_ready', ...STORE_FAULT_REASONS])
    .describe('one stable name per cause, as in the 503 body of a refused write'),
  message: z.string(),
  since: IsoTime.nullable().describe('when the store first failed this way'),
});

export function opsRoutes(app: FastifyInstance, deps: AppDeps, registry: Registry): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness',
        tags: ['ops'],
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    () => ({ status: 'ok' as const }),
  );

  r.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: database open, migrations applied, and the store taking commits',
        description:
          'While the store cannot commit (locked by another process, disk full, read-only) or does not answer (PostgreSQL unreachable), 503 names the cause; it turns ready again by itself once the store answers and a commit succeeds.',
        tags: ['ops'],
        response: { 200: z.object({ ready: z.literal(true) }), 503: NotReady },
      },
    },
    async (_req, reply) => {
      const ready = await deps.ready();
      if (ready === false) {
        void reply.code(503).send({
          ready: false,
          reason: 'database_not_ready',
          message: 'the database is not open or its migrations are not applied',
          since: null,
        });
        return;
      }
      const fault =
        ready === true ? ((await deps.engine.storeFault()) ?? deps.writeFault?.() ?? null) : ready;
      if (fault !== null) {
        void reply
          .code(503)
          .header('retry-after', String(fault.retryAfterS))
          .send({ ready: false, reason: fault.reason, message: fault.message, since: toIso(fault.since) });
        return;
      }
      void reply.code(200).send({ ready: true });
    },
  );

  r.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['ops'] } }, async (_req, reply) => {
    await reply.type(registry.contentType).send(await registry.metrics());
  });

  r.get(
    '/v1/connectors',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'Each connector: enabled, mode, health, last success, last error, next poll',
        tags: ['connectors'],
        response: { 200: z.object({ connectors: z.array(ConnectorSchema) }), ...COMMON_ERRORS },
      },
    },
    async () => ({
      connectors: (await deps.connectors()).map((c) => {
        const d = c.descriptor;
        return {
          platform: d.platform,
          display_name: d.displayName,
          enabled: c.enabled,
          simulated: c.simulated,
          mode: d.mode,
          presence: d.capabilities.presence,
          capabilities: {
            activities: d.capabilities.activities,
            custom_status: d.capabilities.customStatus,
            devices: d.capabilities.devices,
            manual_states: d.capabilities.manualStates,
            identity: d.capabilities.identity,
          },
          role: c.role,
          health: c.health.state,
          last_success_at: toIsoOrNull(c.health.lastSuccessAt),
          last_error: c.health.lastError,
          next_poll_at: toIsoOrNull(c.health.nextPollAt),
          notes: d.notes,
        };
      }),
    }),
  );
}
