/**
 * @module http/schemas
 * Zod schemas shared by routes: ids, the presence object, errors. The OpenAPI document at /docs
 * is generated from these, so they are the API's one description.
 */

import { z } from 'zod';

import { LAST_SEEN_APPROX } from '../privacy/project';
import { ACTIVITIES, PLATFORMS, REAL_PLATFORMS, SOURCES, STATUSES, USER_ID_PATTERN } from '../core/presence';

export const UserId = z
  .string()
  .regex(USER_ID_PATTERN, 'user ids are 1-128 characters of A-Z a-z 0-9 . _ : @ -')
  .describe('A user id chosen by the operator');

export const MAX_BATCH = 1000;

export function splitIds(list: string): string[] {
  return list.split(',');
}

/**
 * `a,b,c`: each a valid id, at most 1,000. The list stays a string (`splitIds` makes it an array):
 * the batch read uses it as it came as the key of its memo. One regular expression checks the
 * whole list (a batch read's validation is on the hot path); a list it refuses is checked again
 * id by id, so that the error still names the bad id.
 */
const ID_LIST = new RegExp(
  `^${USER_ID_PATTERN.source.slice(1, -1)}(?:,${USER_ID_PATTERN.source.slice(1, -1)}){0,${MAX_BATCH - 1}}$`,
);
const UserIdArray = z
  .array(UserId)
  .min(1, 'user_ids needs at least one id')
  .max(MAX_BATCH, `at most ${MAX_BATCH} user ids per request`);
export const UserIdList = z
  .string()
  .superRefine((s, ctx) => {
    if (ID_LIST.test(s)) return;
    const checked = UserIdArray.safeParse(splitIds(s));
    for (const issue of checked.success ? [] : checked.error.issues)
      ctx.addIssue({ ...issue, code: 'custom', message: issue.message });
    if (checked.success) ctx.addIssue({ code: 'custom', message: 'not a list of user ids' });
  })
  .describe('Comma-separated user ids, at most 1,000');

export const Status = z.enum(STATUSES);
export const Activity = z.enum(ACTIVITIES);
export const Source = z.enum(SOURCES);
export const Platform = z.enum(PLATFORMS);
export const RealPlatform = z.enum(REAL_PLATFORMS);
export const IsoTime = z.string().describe('ISO-8601 UTC with milliseconds');

export const CustomStatusView = z.object({
  text: z.string(),
  emoji: z.string().nullable(),
  expires_at: IsoTime.nullable(),
});

export const PlatformView = z.object({
  status: Status,
  activity: Activity.nullable(),
  source: Source,
  raw: z.unknown().describe("The platform's own value(s), verbatim"),
  // Null only for a viewer who may not see the user's last seen (README, Viewers and privacy).
  observed_at: IsoTime.nullable(),
  expires_at: IsoTime.nullable(),
  stale: z.boolean(),
  devices: z.record(
    z.string(),
    z.object({ status: Status, observed_at: IsoTime.nullable(), expires_at: IsoTime.nullable() }),
  ),
});

export const PresenceSchema = z
  .object({
    user_id: z.string(),
    status: Status,
    activity: Activity.nullable(),
    custom_status: CustomStatusView.nullable(),
    source: Source.nullable(),
    observed_at: IsoTime.nullable(),
    last_active_at: IsoTime.nullable(),
    expires_at: IsoTime.nullable(),
    stale: z.boolean(),
    version: z.number().int(),
    reachable_via: z.array(Platform),
    identity_only: z
      .array(Platform)
      .describe(
        'Linked platforms that establish who the person is but have no presence API (LinkedIn): never a status',
      ),
    explain: z.string(),
    override: z
      .object({
        status: Status,
        activity: Activity.nullable(),
        custom_status: CustomStatusView.nullable(),
        set_at: IsoTime.nullable(),
        expires_at: IsoTime.nullable(),
      })
      .nullable(),
    platforms: z.record(z.string(), PlatformView),
    last_seen_approx: z
      .enum(LAST_SEEN_APPROX)
      .optional()
      .describe(
        "Only for a viewer who may not see this user's last seen (the times are then null): recently (3 days), within_week, within_month, long_ago",
      ),
    last_seen_hidden_by_own_settings: z
      .literal(true)
      .optional()
      .describe(
        "The viewer's own reciprocal settings hide their last seen from this user, so this user's is hidden too",
      ),
  })
  .describe('The presence object (docs/api.md)');

export const BatchPresence = z.object({
  presence: z.record(z.string(), PresenceSchema),
  unknown: z.array(z.string()),
});

export const ErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    request_id: z.string(),
    details: z.array(
      z.object({
        code: z.string(),
        message: z.string(),
        path: z.array(z.union([z.string(), z.number()])).optional(),
      }),
    ),
  }),
});

/** The error responses every authenticated route can give, for the OpenAPI document. */
export const COMMON_ERRORS = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 429: ErrorBody } as const;

export const CustomStatusInput = z.strictObject({
  text: z.string().max(100),
  emoji: z.string().max(64).nullable().optional(),
  expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
});
