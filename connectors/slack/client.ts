/**
 * @module connectors/slack/client
 * The only file that imports Slack's SDKs. A thin wrapper over `@slack/web-api`'s WebClient for
 * the three read calls the connector makes, and over `@slack/bolt`'s request verification. Every
 * SDK failure comes out as a `SlackCallError` with a message that is safe to show (no token, no
 * response body), so the connector never sees SDK types.
 *
 * Retries: the WebClient is built with `rejectRateLimitedCalls: true` and `retryConfig: { retries: 0 }`.
 * Its own retry loop sleeps on real timers, invisible to the injected clock, and would hold a
 * request queue shared by every method's budget; instead a 429 comes back at once with its `Retry-After`,
 * a 5xx or network failure at once, and the connector's scheduler (which runs on the injected
 * clock) decides when to call again.
 */

import { isValidSlackRequest } from '@slack/bolt';
import {
  LogLevel,
  WebAPIHTTPError,
  WebAPIPlatformError,
  WebAPIRateLimitedError,
  WebAPIRequestError,
  WebClient,
  type Logger,
} from '@slack/web-api';

import type { Log } from '../../src/core/log';
import type { SlackDndStatus, SlackPresenceResponse, SlackProfileStatus } from './types';

/** Where the Web API lives unless `SLACK_API_URL` says otherwise. */
export const SLACK_API_URL = 'https://slack.com/api/';

/** Slack errors that mean the token no longer works: only a new authorization helps. */
export const SLACK_AUTH_ERRORS: ReadonlySet<string> = new Set([
  'invalid_auth',
  'not_authed',
  'token_revoked',
  'token_expired',
  'account_inactive',
]);

/** Errors that waiting will not fix but a reinstall with more scopes will. */
export const SLACK_SCOPE_ERRORS: ReadonlySet<string> = new Set(['missing_scope', 'not_allowed_token_type']);

/** Errors about one user, not the call: skip that user until its next turn. */
export const SLACK_USER_ERRORS: ReadonlySet<string> = new Set(['user_not_found', 'user_not_visible']);

export type SlackCallFailure =
  | { readonly kind: 'rate_limited'; readonly retryAfterMs: number }
  /** HTTP 200 with `{ ok: false, error }`: the platform's own error code. */
  | { readonly kind: 'platform'; readonly error: string }
  | { readonly kind: 'http'; readonly status: number }
  | { readonly kind: 'network'; readonly reason: string };

/** A failed Slack call. `message` never holds the token or a response body. */
export class SlackCallError extends Error {
  constructor(
    readonly method: string,
    readonly failure: SlackCallFailure,
  ) {
    super(`${method}: ${describe(failure)}`);
    this.name = 'SlackCallError';
  }

  get isAuth(): boolean {
    return this.failure.kind === 'platform' && SLACK_AUTH_ERRORS.has(this.failure.error);
  }
}

function describe(f: SlackCallFailure): string {
  switch (f.kind) {
    case 'rate_limited':
      return `rate limited (HTTP 429), Retry-After ${Math.round(f.retryAfterMs / 1000)} s`;
    case 'platform':
      return f.error;
    case 'http':
      return `HTTP ${f.status}`;
    case 'network':
      return `network error (${f.reason})`;
  }
}

function toFailure(error: unknown): SlackCallFailure {
  if (error instanceof WebAPIRateLimitedError)
    return { kind: 'rate_limited', retryAfterMs: error.retryAfter * 1000 };
  if (error instanceof WebAPIPlatformError) return { kind: 'platform', error: String(error.data.error) };
  if (error instanceof WebAPIHTTPError) return { kind: 'http', status: error.statusCode };
  if (error instanceof WebAPIRequestError) {
    // The cause's code (ECONNREFUSED, UND_ERR_…, TimeoutError) says what happened without echoing a URL.
    const cause = error.original as Error & { cause?: { code?: unknown }; code?: unknown };
    const code = cause.cause?.code ?? cause.code ?? cause.name;
    return { kind: 'network', reason: typeof code === 'string' ? code : 'request failed' };
  }
  return { kind: 'network', reason: error instanceof Error ? error.name : 'unknown failure' };
}

/** The SDK's logger interface onto ours: warnings and errors only (debug lines echo request bodies). */
function sdkLogger(log: Log): Logger {
  const text = (msg: unknown[]): string =>
    msg.map((m) => (typeof m === 'string' ? m : JSON.stringify(m))).join(' ');
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: (...msg: unknown[]) => log.warn({ platform: 'slack', sdk: '@slack/web-api' }, text(msg)),
    error: (...msg: unknown[]) => log.error({ platform: 'slack', sdk: '@slack/web-api' }, text(msg)),
    setLevel: () => undefined,
    getLevel: () => LogLevel.WARN,
    setName: () => undefined,
  };
}

export interface SlackClientOptions {
  /** Base URL of the Web API (`SLACK_API_URL`); defaults to https://slack.com/api/. */
  readonly apiUrl?: string;
  /** Per-request timeout; a slow answer must not hold a method's budget forever. */
  readonly timeoutMs?: number;
  readonly log: Log;
}

/** The calls the connector needs; `SlackClient` makes them with one workspace's token. */
export interface SlackApi {
  getPresence(user: string): Promise<SlackPresenceResponse>;
  dndTeamInfo(users: readonly string[]): Promise<Record<string, SlackDndStatus>>;
  usersProfileGet(user: string): Promise<SlackProfileStatus>;
}

export class SlackClient implements SlackApi {
  private readonly web: WebClient;

  constructor(token: string, options: SlackClientOptions) {
    this.web = new WebClient(token, {
      slackApiUrl: options.apiUrl ?? SLACK_API_URL,
      rejectRateLimitedCalls: true,
      retryConfig: { retries: 0 },
      timeout: options.timeoutMs ?? 10_000,
      logger: sdkLogger(options.log),
      // Method names only: an absolute URL never overrides the configured base.
      allowAbsoluteUrls: false,
    });
  }

  private async call<T>(method: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw new SlackCallError(method, toFailure(error));
    }
  }

  async getPresence(user: string): Promise<SlackPresenceResponse> {
    // https://docs.slack.dev/reference/methods/users.getPresence/ (Tier 3, users:read)
    const r = await this.call('users.getPresence', () => this.web.users.getPresence({ user }));
    return {
      ok: true,
      presence: r.presence ?? '',
      ...(r.online !== undefined ? { online: r.online } : {}),
      ...(r.auto_away !== undefined ? { auto_away: r.auto_away } : {}),
      ...(r.manual_away !== undefined ? { manual_away: r.manual_away } : {}),
      ...(r.connection_count !== undefined ? { connection_count: r.connection_count } : {}),
      ...(r.last_activity !== undefined ? { last_activity: r.last_activity } : {}),
    };
  }

  async dndTeamInfo(users: readonly string[]): Promise<Record<string, SlackDndStatus>> {
    if (users.length > 50) throw new RangeError('dnd.teamInfo takes at most 50 users');
    // https://docs.slack.dev/reference/methods/dnd.teamInfo/ (Tier 2, dnd:read, up to 50 users)
    const r = await this.call('dnd.teamInfo', () => this.web.dnd.teamInfo({ users: users.join(',') }));
    const out: Record<string, SlackDndStatus> = {};
    for (const [id, u] of Object.entries(r.users ?? {})) {
      out[id] = {
        dnd_enabled: u.dnd_enabled ?? false,
        next_dnd_start_ts: u.next_dnd_start_ts ?? 0,
        next_dnd_end_ts: u.next_dnd_end_ts ?? 0,
      };
    }
    return out;
  }

  async usersProfileGet(user: string): Promise<SlackProfileStatus> {
    // https://docs.slack.dev/reference/methods/users.profile.get/ (Tier 4, users.profile:read)
    const r = await this.call('users.profile.get', () => this.web.users.profile.get({ user }));
    const p = r.profile ?? {};
    return {
      status_text: p.status_text ?? '',
      status_emoji: p.status_emoji ?? '',
      status_expiration: p.status_expiration ?? 0,
      // Newer profiles say when the person is in a huddle (https://docs.slack.dev/reference/events/user_huddle_changed/).
      ...(typeof p.huddle_state === 'string' ? { huddle_state: p.huddle_state } : {}),
      ...(typeof p.huddle_state_expiration_ts === 'number'
        ? { huddle_state_expiration_ts: p.huddle_state_expiration_ts }
        : {}),
    };
  }
}

/** Slack refuses timestamps more than five minutes from now; bolt checks only the past side. */
export const SLACK_SIGNATURE_WINDOW_MS = 5 * 60_000;

export type SlackSignatureCheck = 'ok' | 'missing' | 'malformed' | 'stale' | 'mismatch';

/**
 * Slack's v0 request signature (https://docs.slack.dev/authentication/verifying-requests-from-slack):
 * `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` keyed by the signing secret, with the
 * timestamp within five minutes of now. Bolt's `isValidSlackRequest` computes the HMAC and
 * compares it in constant time (tsscmp); the header shapes and the window, both sides (bolt
 * checks only the past), are checked here first so that the answer can say which was wrong.
 */
export function checkSlackSignature(input: {
  readonly signingSecret: string;
  readonly rawBody: string;
  readonly timestamp: string | undefined;
  readonly signature: string | undefined;
  readonly nowMs: number;
}): SlackSignatureCheck {
  const { timestamp, signature } = input;
  if (timestamp === undefined || signature === undefined || timestamp === '' || signature === '')
    return 'missing';
  // Leading zeros are refused: bolt signs the number, Slack the digits as sent.
  if (!/^[1-9]\d{0,11}$/.test(timestamp) || !/^v0=[0-9a-f]{64}$/.test(signature)) return 'malformed';
  if (input.signingSecret === '') return 'mismatch';
  const ts = Number(timestamp);
  if (Math.abs(input.nowMs - ts * 1000) > SLACK_SIGNATURE_WINDOW_MS) return 'stale';
  const valid = isValidSlackRequest({
    signingSecret: input.signingSecret,
    body: input.rawBody,
    headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': ts },
    nowMilliseconds: input.nowMs,
  });
  return valid ? 'ok' : 'mismatch';
}
