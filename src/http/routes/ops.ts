/**
 * @module http/routes/ops
 * Liveness, readiness, metrics and the connector list.
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import { z } from 'zod';

import { toIsoOrNull } from '../../core/time';
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
  health: z.enum(['ok', 'degraded', 'down', 'off']),
  last_success_at: IsoTime.nullable(),
  last_error: z.string().nullable(),
  next_poll_at: IsoTime.nullable(),
  notes: z.string(),
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
        summary: 'Readiness: database open and migrations applied',
        tags: ['ops'],
        response: { 200: z.object({ ready: z.boolean() }), 503: z.object({ ready: z.boolean() }) },
      },
    },
    (_req, reply) => {
      const ready = deps.ready();
      void reply.code(ready ? 200 : 503).send({ ready });
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
    () => ({
      connectors: deps.connectors().map((c) => {
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
