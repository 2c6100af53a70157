/**
 * @module connectors/slack/options
 * What a Slack connector is built with.
 */

import type { Clock } from '../../src/core/clock';
import type { RateBuckets } from '../../src/core/ports';
import type { Log } from '../../src/core/log';

export interface SlackAuthErrorInfo {
  /** The workspace whose token was refused ('' for accounts linked without one). */
  readonly workspaceId: string;
  /** Slack's error code: `invalid_auth`, `token_revoked`, `account_inactive`, … */
  readonly error: string;
}

export interface SlackConnectorOptions {
  /**
   * Events only: no token, no polling. With just `SLACK_SIGNING_SECRET` the Events API still
   * pushes DND, custom status and huddles, and they are applied until Slack says they end.
   */
  readonly pushOnly?: boolean;
  /** Push-only: how long a pushed state counts when Slack gives it no end (default 7 days). */
  readonly pushTtlMs?: number;
  /** One bot token for every workspace (`SLACK_BOT_TOKEN`). */
  readonly token?: string;
  /** Or a token per workspace, from the connection layer; asked before each round of calls. */
  readonly tokenFor?: (workspaceId: string) => Promise<string>;
  /** Web API base URL (`SLACK_API_URL`); defaults to https://slack.com/api/. */
  readonly apiUrl?: string;
  /** Defaults to the clock of the context the connector is started with. */
  readonly clock?: Clock;
  /**
   * Where each workspace's per-method budgets are kept: shared by the nodes (the coordination's),
   * so together they stay within the tier; default this process's.
   */
  readonly buckets?: RateBuckets;
  /** How often each user's presence is polled, budget permitting. Default 60 s. */
  readonly pollIntervalMs?: number;
  /** How often DND is fetched per user (in batches of 50). Default: the poll interval. */
  readonly dndIntervalMs?: number;
  /** How often each profile (custom status) is fetched; 0 relies on events alone. Default: the poll interval. */
  readonly profileIntervalMs?: number;
  /** Calls per minute per workspace: Tier 2 (dnd.teamInfo), Tier 3 (users.getPresence), Tier 4 (users.profile.get). */
  readonly tier2PerMinute?: number;
  readonly tier3PerMinute?: number;
  readonly tier4PerMinute?: number;
  /** A report counts for this many presence cycles. Default 3. */
  readonly ttlPolls?: number;
  /** Exponential backoff after a failed call: first delay and cap. Defaults 5 s and 5 min. */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** After a refused token, try once more after this long (0: only after `resume`). Default 1 h. */
  readonly authRetryMs?: number;
  readonly requestTimeoutMs?: number;
  /** Arm real timers in `start()`. Tests driving a FakeClock say false and call `pollDue()`. */
  readonly timers?: boolean;
  /** Called once when a workspace's token is refused; the connection layer marks it reauth_required. */
  readonly onAuthError?: (info: SlackAuthErrorInfo) => void | Promise<void>;
  readonly log?: Log;
}
