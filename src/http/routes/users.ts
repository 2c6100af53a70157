/**
 * @module http/routes/users
 * Users and their linked accounts.
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import { UserService } from '../../aggregator/users';
import { AppError } from '../../core/errors';
import type { AccountRecord, UserRecord } from '../../core/ports';
import { toIso } from '../../core/time';
import type { AppDeps } from '../deps';
import { COMMON_ERRORS, ErrorBody, IsoTime, Platform, UserId } from '../schemas';
import { UserParams } from './presence';

const ExternalId = z.string().min(1).max(256);
const WorkspaceId = z.string().min(1).max(256);

function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const AccountSchema = z.object({
  platform: Platform,
  external_id: z.string(),
  workspace_id: z.string().nullable(),
  linked_at: IsoTime,
});

const UserSchema = z.object({
  user_id: z.string(),
  display_name: z.string().nullable(),
  timezone: z.string().nullable(),
  created_at: IsoTime,
  updated_at: IsoTime,
  accounts: z.array(AccountSchema),
  connections: z.array(z.record(z.string(), z.unknown())),
});

const toAccount = (a: AccountRecord): z.infer<typeof AccountSchema> => ({
  platform: a.platform,
  external_id: a.externalId,
  workspace_id: a.workspaceId === '' ? null : a.workspaceId,
  linked_at: toIso(a.createdAt),
});

export function userRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { engine } = deps;
  const users = deps.users ?? new UserService({ engine });

  const view = async (user: UserRecord, accounts: AccountRecord[]): Promise<z.infer<typeof UserSchema>> => ({
    user_id: user.userId,
    display_name: user.displayName,
    timezone: user.timezone,
    created_at: toIso(user.createdAt),
    updated_at: toIso(user.updatedAt),
    accounts: accounts.map(toAccount),
    connections: (await deps.connectionsOf?.(user.userId)) ?? [],
  });

  r.get(
    '/v1/users',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'The ids of the users the service tracks, in id order, a page at a time',
        description:
          "Pages of at most `limit` ids (default and most 1000); pass the answer's `next` as `after` for the next page, until `next` is null.",
        tags: ['users'],
        querystring: z.strictObject({
          after: UserId.optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(1000),
        }),
        response: {
          200: z.object({
            user_ids: z.array(z.string()),
            next: z.string().nullable(),
            total: z.number().int(),
          }),
          ...COMMON_ERRORS,
        },
      },
    },
    (req) => {
      const { after, limit } = req.query;
      const all = [...engine.userIds()].sort();
      let start = 0;
      if (after !== undefined) {
        // The first id after `after`, by binary search over the sorted ids.
        let hi = all.length;
        while (start < hi) {
          const mid = (start + hi) >>> 1;
          if (all[mid]! <= after) start = mid + 1;
          else hi = mid;
        }
      }
      const page = all.slice(start, start + limit);
      const more = start + limit < all.length;
      return { user_ids: page, next: more ? page[page.length - 1]! : null, total: all.length };
    },
  );

  r.put(
    '/v1/users/:user_id',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'Create or update a user',
        tags: ['users'],
        params: UserParams,
        body: z.strictObject({
          display_name: z.string().min(1).max(200).nullable().optional(),
          timezone: z.string().max(64).refine(validTimezone, 'not an IANA time zone').nullable().optional(),
        }),
        response: { 200: UserSchema, 201: UserSchema, ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      const { created, user } = await engine.putUser(req.params.user_id, {
        displayName: req.body.display_name,
        timezone: req.body.timezone,
      });
      const found = await engine.getUser(user.userId);
      return reply.code(created ? 201 : 200).send(await view(user, found?.accounts ?? []));
    },
  );

  r.get(
    '/v1/users/:user_id',
    {
      config: { scope: 'read' },
      schema: {
        summary: 'The user with its accounts and connections',
        tags: ['users'],
        params: UserParams,
        response: { 200: UserSchema, 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req) => {
      const found = await engine.getUser(req.params.user_id);
      if (found === null) throw new AppError('not_found', `unknown user ${req.params.user_id}`);
      return await view(found.user, found.accounts);
    },
  );

  r.delete(
    '/v1/users/:user_id',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'Forget the user and everything stored about them',
        tags: ['users'],
        params: UserParams,
        response: { 204: z.null(), 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      const id = req.params.user_id;
      if (!(await users.deleteUser(id))) throw new AppError('not_found', `unknown user ${id}`);
      void reply.code(204).send(null);
    },
  );

  r.post(
    '/v1/users/:user_id/accounts',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'Link an account (409 when another user has it)',
        tags: ['users'],
        params: UserParams,
        body: z.strictObject({
          platform: Platform,
          external_id: ExternalId,
          workspace_id: WorkspaceId.optional(),
        }),
        response: { 201: AccountSchema, 404: ErrorBody, 409: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      const id = req.params.user_id;
      if (!engine.hasUser(id)) throw new AppError('not_found', `unknown user ${id}`);
      const b = req.body;
      const ref = { platform: b.platform, externalId: b.external_id, workspaceId: b.workspace_id ?? '' };
      const result = await engine.linkAccount(id, ref);
      if (!result.linked) {
        throw new AppError(
          'conflict',
          `that ${b.platform} account is linked to another user (${result.ownerId})`,
        );
      }
      const linked = (await engine.getUser(id))?.accounts.find(
        (a) =>
          a.platform === ref.platform && a.externalId === ref.externalId && a.workspaceId === ref.workspaceId,
      );
      if (linked === undefined) throw new Error('linked account not found after linking');
      void reply.code(201).send(toAccount(linked));
    },
  );

  r.delete(
    '/v1/users/:user_id/accounts/:platform/:external_id',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'Unlink an account',
        tags: ['users'],
        params: z.strictObject({ user_id: UserId, platform: Platform, external_id: ExternalId }),
        querystring: z.strictObject({ workspace_id: WorkspaceId.optional() }),
        response: { 204: z.null(), 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      const p = req.params;
      if (!engine.hasUser(p.user_id)) throw new AppError('not_found', `unknown user ${p.user_id}`);
      const ref = {
        platform: p.platform,
        externalId: p.external_id,
        workspaceId: req.query.workspace_id ?? '',
      };
      if (!(await engine.unlinkAccount(p.user_id, ref))) {
        throw new AppError('not_found', `user ${p.user_id} has no ${p.platform} account ${p.external_id}`);
      }
      void reply.code(204).send(null);
    },
  );
}
