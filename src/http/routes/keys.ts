/**
 * @module http/routes/keys
 * API key management (admin scope). `presence keys create` does the same from the shell.
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import { AppError } from '../../core/errors';
import { toIso, toIsoOrNull } from '../../core/time';
import { SCOPES, type ApiKeyInfo } from '../../keys/api-keys';
import type { AppDeps } from '../deps';
import { COMMON_ERRORS, ErrorBody, IsoTime } from '../schemas';

const KeySchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  scopes: z.array(z.enum(SCOPES)),
  created_at: IsoTime,
  revoked_at: IsoTime.nullable(),
});

const view = (k: ApiKeyInfo): z.infer<typeof KeySchema> => ({
  id: k.id,
  name: k.name,
  scopes: [...k.scopes],
  created_at: toIso(k.createdAt),
  revoked_at: toIsoOrNull(k.revokedAt),
});

export function keyRoutes(app: FastifyInstance, { keys }: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    '/v1/keys',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Create an API key; the reply holds the key, shown once',
        tags: ['keys'],
        body: z.strictObject({
          scopes: z.array(z.enum(SCOPES)).min(1),
          name: z.string().min(1).max(100).optional(),
        }),
        response: { 201: KeySchema.extend({ key: z.string() }), ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      const { key, info } = await keys.create([...new Set(req.body.scopes)], req.body.name ?? null);
      return reply.code(201).send({ ...view(info), key });
    },
  );

  r.get(
    '/v1/keys',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'API keys (never their secrets)',
        tags: ['keys'],
        response: { 200: z.object({ keys: z.array(KeySchema) }), ...COMMON_ERRORS },
      },
    },
    async () => ({ keys: (await keys.list()).map(view) }),
  );

  r.delete(
    '/v1/keys/:id',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Revoke an API key',
        tags: ['keys'],
        params: z.strictObject({ id: z.string().regex(/^[0-9a-f]{16}$/, 'key ids are 16 hex digits') }),
        response: { 204: z.null(), 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      if (!(await keys.revoke(req.params.id)))
        throw new AppError('not_found', `no active key ${req.params.id}`);
      return reply.code(204).send(null);
    },
  );
}
