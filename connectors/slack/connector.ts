/**
 * @module connectors/slack/connector
 * The real Slack connector. Modern Slack apps cannot receive `presence_change` (RTM only), so
 * active/away is polled with `users.getPresence`, one user per call, within the Tier 3 budget of
 * each workspace. DND comes from `dnd.teamInfo` (50 users a call, Tier 2) and custom status from
 * `users.profile.get` (Tier 4); both also arrive as Events API pushes (`handleEvent`). The three
 * are combined into a `SlackUserState` and mapped by the pure `toSlackPresence`.
 *
 * Scheduling. Each workspace has one rate budget per method (`BudgetState`: its next slot, its
 * backoff, its Retry-After). A method is called at most once per slot, and slots are at least
 * `60 s / tier limit` apart, so no rolling minute ever holds more calls than the tier allows; when
 * the method has fewer users than its tier allows calls, slots are spread evenly over the
 * interval instead (interval / users), so polls do not come in bursts. Each user is due again one
 * interval after its last successful poll. A 429 blocks the method until its `Retry-After` has
 * passed; other failures back off exponentially; a revoked token pauses the whole workspace and
 * calls `onAuthError`. Everything is measured on the injected clock: `pollDue()` does whatever is
 * due now (tests call it with a FakeClock), and `start()` arms a real timer that calls it when the
 * next thing is due.
 *
 * The per-user state and its pure steps are in state.ts; how a state becomes a report (mapping,
 * push-only ends) is report.ts.
 */

import { systemClock, type Clock } from '../../src/core/clock';
import { InProcessRateBuckets } from '../../src/core/coordination';
import type { Connector, ConnectorContext, ConnectorHealth } from '../../src/core/connector';
import { silentLog, type Log } from '../../src/core/log';
import type { RateBuckets } from '../../src/core/ports';
import type { PushPort } from '../inbound';
import { SLACK_SCOPE_ERRORS, SLACK_USER_ERRORS, SlackCallError, SlackClient, type SlackApi } from './client';
import { slack } from './descriptor';
import type { SlackConnectorOptions } from './options';
import { SlackReporter } from './report';
import {
  BUDGETS,
  budgetSpecs,
  eventUpdate,
  fetchInto,
  newBudget,
  remapAt,
  type BudgetName,
  type BudgetSpec,
  type BudgetState,
  type UserState,
  type Workspace,
} from './state';
import type { SlackEventCallback } from './types';

export type { SlackAuthErrorInfo, SlackConnectorOptions } from './options';

/** Between wake-ups, so that newly linked accounts are picked up soon. */
const MAX_SLEEP_MS = 1000;
const label = (workspaceId: string): string => (workspaceId === '' ? 'the default workspace' : workspaceId);

const seconds = (ms: number): string => `${Math.ceil(ms / 1000)} s`;

export class SlackConnector implements Connector, PushPort<SlackEventCallback> {
  readonly descriptor: typeof slack;

  private readonly spec: Record<BudgetName, BudgetSpec>;
  private readonly pollIntervalMs: number;
  private readonly ttlPolls: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly authRetryMs: number;
  private readonly workspaces = new Map<string, Workspace>();
  private readonly reporter: SlackReporter;
  private ctx: ConnectorContext | null = null;
  private clock: Clock;
  private log: Log;
  private buckets: RateBuckets;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private lastSuccessAt: number | null = null;
  private lastError: string | null = null;
  private startedAt = 0;

  private readonly pushOnly: boolean;
  private readonly pushTtlMs: number;

  constructor(private readonly options: SlackConnectorOptions) {
    this.pushOnly = options.pushOnly === true;
    if (!this.pushOnly && options.token === undefined && options.tokenFor === undefined)
      throw new Error('SlackConnector needs a token or tokenFor (or pushOnly)');
    this.pushTtlMs = options.pushTtlMs ?? 7 * 24 * 3_600_000;
    this.descriptor = this.pushOnly
      ? {
          ...slack,
          mode: 'push',
          notes:
            'Events only (no bot token): DND, custom status and huddles as Slack pushes them; active/away is not known.',
        }
      : slack;
    this.pollIntervalMs = options.pollIntervalMs ?? 60_000;
    if (!(this.pollIntervalMs > 0)) throw new Error('pollIntervalMs must be positive');
    this.ttlPolls = options.ttlPolls ?? 3;
    this.backoffBaseMs = options.backoffBaseMs ?? 5_000;
    this.backoffMaxMs = options.backoffMaxMs ?? 5 * 60_000;
    this.authRetryMs = options.authRetryMs ?? 3_600_000;
    this.spec = budgetSpecs(options, this.pollIntervalMs, this.pushOnly);
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? silentLog;
    this.buckets = options.buckets ?? new InProcessRateBuckets(this.clock);
    this.reporter = new SlackReporter({
      log: () => this.log,
      pushOnly: this.pushOnly,
      pushTtlMs: this.pushTtlMs,
      ttlMs: (workspaceId) => this.ttlMs(workspaceId),
      reported: (at) => {
        this.lastSuccessAt = at;
      },
    });
  }

  // ---------------------------------------------------------------- lifecycle

  start(ctx: ConnectorContext): Promise<void> {
    this.ctx = ctx;
    this.clock = this.options.clock ?? ctx.clock;
    this.log = this.options.log ?? ctx.log;
    this.buckets = this.options.buckets ?? new InProcessRateBuckets(this.clock);
    this.startedAt = this.clock.now();
    this.sync();
    this.arm();
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    // ctx first: a poll still in flight then reports nothing and arms no new timer.
    this.ctx = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.inFlight !== null) await this.inFlight;
  }

  /** Ends a pause after a refused token (all workspaces, or one), e.g. once the app is reauthorized. */
  resume(workspaceId?: string): void {
    for (const ws of this.workspaces.values()) {
      if (workspaceId !== undefined && ws.id !== workspaceId) continue;
      ws.authPaused = false;
      ws.authRetryAt = 0;
      ws.client = null;
      for (const name of BUDGETS)
        Object.assign(ws.budgets[name], { blockedUntil: 0, failures: 0, failing: false });
    }
    this.arm();
  }

  health(): ConnectorHealth {
    if (this.ctx === null)
      return { state: 'off', lastSuccessAt: this.lastSuccessAt, lastError: this.lastError, nextPollAt: null };
    const now = this.clock.now();
    const active = [...this.workspaces.values()].filter((ws) => ws.users.size > 0);
    const paused = active.filter((ws) => ws.authPaused);
    const failing = active.filter((ws) => BUDGETS.some((l) => ws.budgets[l].failing));
    // Down: every workspace refuses the token, or has had no presence answer for as long as a
    // report lives (its users are going stale). A first failure alone is only degraded.
    const lost = active.filter(
      (ws) =>
        ws.authPaused ||
        (ws.budgets.presence.failing && now - (ws.presenceOkAt ?? this.startedAt) >= this.ttlMs(ws.id)),
    );
    let state: ConnectorHealth['state'] = 'ok';
    if (active.length > 0 && lost.length === active.length) state = 'down';
    else if (paused.length > 0 || failing.length > 0) state = 'degraded';
    return {
      state,
      lastSuccessAt: this.lastSuccessAt,
      lastError: this.lastError,
      nextPollAt: this.nextDueAt(),
    };
  }

  // ---------------------------------------------------------------- scheduling

  /** The earliest moment something is due (a call or a re-mapping), or null when nothing is linked. */
  nextDueAt(): number | null {
    let next = Infinity;
    for (const ws of this.workspaces.values()) {
      for (const u of ws.users.values()) if (u.remapAt !== null) next = Math.min(next, u.remapAt);
      if (ws.users.size === 0) continue;
      const authGate = ws.authPaused ? ws.authRetryAt : 0;
      for (const name of BUDGETS) {
        if (this.spec[name].intervalMs <= 0) continue;
        let earliest = Infinity;
        for (const u of ws.users.values()) if (this.polled(u)) earliest = Math.min(earliest, u.due[name]);
        const budget = ws.budgets[name];
        next = Math.min(
          next,
          Math.max(earliest, budget.nextSlotAt, budget.blockedUntil, budget.retryAfterUntil, authGate),
        );
      }
    }
    return Number.isFinite(next) ? next : null;
  }

  /**
   * Does what is due now: at most one call per budget and workspace, then reports what changed.
   * Never rejects; a call already running is joined rather than doubled.
   */
  pollDue(): Promise<void> {
    if (this.ctx === null) return Promise.resolve();
    if (this.inFlight === null) {
      this.inFlight = this.runDue()
        .catch((err: unknown) => this.log.error({ platform: 'slack', err }, 'slack poll failed'))
        .finally(() => {
          this.inFlight = null;
        });
    }
    return this.inFlight;
  }

  /** The TTL of a report: a few presence cycles, the cycle being longer than the interval when the budget is short. */
  ttlMs(workspaceId: string): number {
    const n = this.workspaces.get(workspaceId)?.users.size ?? 0;
    const cycle = Math.max(this.pollIntervalMs, n * (60_000 / this.spec.presence.perMinute));
    return this.ttlPolls * cycle;
  }

  private arm(): void {
    if (this.options.timers === false || this.ctx === null) return;
    if (this.timer !== null) clearTimeout(this.timer);
    const next = this.nextDueAt();
    const wait = next === null ? MAX_SLEEP_MS : next - this.clock.now();
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.pollDue().then(() => this.arm());
      },
      Math.max(0, Math.min(wait, MAX_SLEEP_MS)),
    );
    this.timer.unref();
  }

  private spacing(ws: Workspace, name: BudgetName): number {
    const s = this.spec[name];
    const floor = 60_000 / s.perMinute;
    let polled = 0;
    for (const u of ws.users.values()) if (this.polled(u)) polled += 1;
    const calls = Math.ceil(polled / s.batch);
    return calls === 0 ? floor : Math.max(floor, s.intervalMs / calls);
  }

  /** Brings the per-user state in line with the accounts users have linked. */
  private sync(): void {
    const ctx = this.ctx;
    if (ctx === null) return;
    const now = this.clock.now();
    const linked = new Set<string>();
    for (const account of ctx.accounts()) {
      if (account.platform !== 'slack') continue;
      let ws = this.workspaces.get(account.workspaceId);
      if (ws === undefined) {
        ws = {
          id: account.workspaceId,
          users: new Map(),
          budgets: { dnd: newBudget(), profile: newBudget(), presence: newBudget() },
          authPaused: false,
          authRetryAt: 0,
          presenceOkAt: null,
          client: null,
        };
        this.workspaces.set(ws.id, ws);
      }
      linked.add(`${ws.id}\u0000${account.externalId}`);
      if (!ws.users.has(account.externalId))
        ws.users.set(account.externalId, {
          account,
          presence: null,
          dnd: null,
          profile: null,
          due: { dnd: now, profile: now, presence: now },
          remapAt: null,
        });
    }
    // Workspaces stay (with their budget state: a Retry-After outlives an unlink); users go.
    for (const ws of this.workspaces.values())
      for (const id of ws.users.keys()) if (!linked.has(`${ws.id}\u0000${id}`)) ws.users.delete(id);
  }

  private async runDue(): Promise<void> {
    this.sync();
    const now = this.clock.now();
    await Promise.all([...this.workspaces.values()].map((ws) => this.runWorkspace(ws, now)));
  }

  private authBlocked(ws: Workspace): boolean {
    return ws.authPaused && this.clock.now() < ws.authRetryAt;
  }

  private budgetReady(ws: Workspace, name: BudgetName, now: number): boolean {
    const budget = ws.budgets[name];
    if (
      this.spec[name].intervalMs <= 0 ||
      now < budget.nextSlotAt ||
      now < budget.blockedUntil ||
      now < budget.retryAfterUntil
    )
      return false;
    for (const u of ws.users.values()) if (u.due[name] <= now && this.polled(u)) return true;
    return false;
  }

  /**
   * Whether this node polls the user (it holds the account's polling share); events are taken
   * for every linked user, whichever node they reach.
   */
  private polled(u: UserState): boolean {
    return this.ctx?.polls?.(u.account) !== false;
  }

  private async runWorkspace(ws: Workspace, now: number): Promise<void> {
    const touched = new Set<UserState>();
    for (const u of ws.users.values())
      if (u.remapAt !== null && u.remapAt <= now) {
        u.remapAt = null;
        touched.add(u);
      }
    if (!this.authBlocked(ws) && BUDGETS.some((l) => this.budgetReady(ws, l, now))) {
      const api = await this.apiFor(ws, now);
      if (api !== null) {
        // DND and profile first, so that a user's first report already has them.
        await Promise.all([
          this.pollMethod(ws, 'dnd', api, now, touched),
          this.pollMethod(ws, 'profile', api, now, touched),
        ]);
        if (!this.authBlocked(ws)) await this.pollMethod(ws, 'presence', api, now, touched);
      }
    }
    const at = this.clock.now();
    await Promise.all([...touched].map((u) => this.report(ws, u, at)));
  }

  private async apiFor(ws: Workspace, now: number): Promise<SlackApi | null> {
    let token: string;
    try {
      token = this.options.token ?? (await this.options.tokenFor!(ws.id));
    } catch (err) {
      // The reason stays in the log at debug level; the health line names no secret.
      this.log.debug({ platform: 'slack', workspaceId: ws.id, err }, 'no slack token');
      this.lastError = `could not get a token for ${label(ws.id)} (${err instanceof Error ? err.name : 'error'})`;
      for (const name of BUDGETS) this.backoff(ws.budgets[name], now);
      return null;
    }
    if (ws.client?.token !== token)
      ws.client = {
        token,
        api: new SlackClient(token, {
          apiUrl: this.options.apiUrl,
          timeoutMs: this.options.requestTimeoutMs,
          log: this.log,
        }),
      };
    return ws.client.api;
  }

  private async pollMethod(
    ws: Workspace,
    name: BudgetName,
    api: SlackApi,
    now: number,
    touched: Set<UserState>,
  ): Promise<void> {
    if (!this.budgetReady(ws, name, now)) return;
    const spec = this.spec[name];
    const budget = ws.budgets[name];
    const due = [...ws.users.values()]
      .filter((u) => u.due[name] <= now && this.polled(u))
      .sort((a, b) => a.due[name] - b.due[name])
      .slice(0, spec.batch);
    budget.nextSlotAt = now + this.spacing(ws, name);
    try {
      // The tier's budget for this workspace and method, spent with every node polling it: the
      // spacing keeps one node within it; the shared window keeps them all.
      const wait = await this.buckets.take(`slack:${ws.id}:${name}`, {
        limit: Math.max(1, Math.floor(spec.perMinute)),
        windowMs: 60_000,
      });
      if (wait > 0) {
        budget.nextSlotAt = now + wait;
        return;
      }
      await fetchInto(name, api, due, now);
    } catch (err) {
      this.fail(ws, name, due, err);
      return;
    }
    for (const u of due) {
      u.due[name] = now + spec.intervalMs;
      touched.add(u);
    }
    budget.failures = 0;
    budget.failing = false;
    if (name === 'presence') ws.presenceOkAt = this.clock.now();
    if (ws.authPaused) {
      ws.authPaused = false;
      this.log.info({ platform: 'slack', workspaceId: ws.id }, 'slack token accepted again');
    }
    this.lastSuccessAt = this.clock.now();
  }

  private backoff(budget: BudgetState, now: number): number {
    budget.failures += 1;
    budget.failing = true;
    const delay = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (budget.failures - 1));
    budget.blockedUntil = Math.max(budget.blockedUntil, now + delay);
    return delay;
  }

  private fail(ws: Workspace, name: BudgetName, due: readonly UserState[], err: unknown): void {
    const now = this.clock.now();
    const spec = this.spec[name];
    const budget = ws.budgets[name];
    // A failed call still spent budget, but the spreading does not apply: the retry waits for
    // the backoff or Retry-After and the tier's floor only.
    budget.nextSlotAt = now + 60_000 / spec.perMinute;
    const where = `${spec.method} (${label(ws.id)})`;
    if (!(err instanceof SlackCallError)) {
      this.log.error({ platform: 'slack', workspaceId: ws.id, err }, `${spec.method} failed`);
      const delay = this.backoff(budget, now);
      this.lastError = `${where}: unexpected failure; retrying in ${seconds(delay)}`;
      return;
    }
    const f = err.failure;
    if (f.kind === 'rate_limited') {
      budget.failing = true;
      budget.retryAfterUntil = Math.max(budget.retryAfterUntil, now + f.retryAfterMs);
      this.lastError = `${where}: rate limited; waiting ${seconds(f.retryAfterMs)} as Retry-After asks`;
      this.log.warn({ platform: 'slack', workspaceId: ws.id, retryAfterMs: f.retryAfterMs }, this.lastError);
      return;
    }
    if (err.isAuth && f.kind === 'platform') {
      this.pauseForAuth(ws, f.error, now);
      return;
    }
    if (f.kind === 'platform' && SLACK_USER_ERRORS.has(f.error) && due.length === 1) {
      // About this user only: skip it until its next turn, the method's budget is fine.
      due[0]!.due[name] = now + spec.intervalMs;
      this.log.debug(
        { platform: 'slack', workspaceId: ws.id, user: due[0]!.account.externalId, error: f.error },
        where,
      );
      return;
    }
    if (f.kind === 'platform' && SLACK_SCOPE_ERRORS.has(f.error)) {
      budget.failures += 1;
      budget.failing = true;
      budget.blockedUntil = now + Math.max(this.authRetryMs, this.backoffMaxMs);
      this.lastError = `${where}: ${f.error}; reinstall the Slack app with the scopes users:read, dnd:read, users.profile:read`;
      this.log.warn({ platform: 'slack', workspaceId: ws.id }, this.lastError);
      return;
    }
    const delay = this.backoff(budget, now);
    this.lastError = `${err.message} (${label(ws.id)}); retrying in ${seconds(delay)}`;
    this.log.warn({ platform: 'slack', workspaceId: ws.id, failures: budget.failures }, this.lastError);
  }

  private pauseForAuth(ws: Workspace, error: string, now: number): void {
    ws.authRetryAt = this.authRetryMs > 0 ? now + this.authRetryMs : Infinity;
    ws.client = null;
    if (ws.authPaused) return;
    ws.authPaused = true;
    this.lastError = `${error}: Slack refused the token for ${label(ws.id)}; polling paused until the app is reauthorized`;
    this.log.warn({ platform: 'slack', workspaceId: ws.id, error }, this.lastError);
    // Not awaited (it records the connections' health in the store): polling goes on meanwhile.
    Promise.resolve()
      .then(() => this.options.onAuthError?.({ workspaceId: ws.id, error }))
      .catch((err: unknown) => this.log.error({ platform: 'slack', err }, 'onAuthError failed'));
  }

  private report(ws: Workspace, u: UserState, now: number): Promise<void> {
    const ctx = this.ctx;
    return ctx === null ? Promise.resolve() : this.reporter.report(ctx, ws, u, now);
  }

  // ---------------------------------------------------------------- events

  /** The inbound handler's port: each verified, new event goes to `handleEvent`. */
  push(envelope: SlackEventCallback): Promise<void> {
    return this.handleEvent(envelope);
  }

  /**
   * One verified Events API delivery (see inbound.ts): `user_change`, `user_status_changed` and
   * `user_huddle_changed` carry the profile with the custom status and the huddle state,
   * `dnd_updated_user` the DND state. An event is read only when every field used has its
   * documented type (types.ts); anything else is ignored. The user's state is updated and
   * reported: once its presence is known when polling, at once when push-only.
   */
  async handleEvent(envelope: SlackEventCallback): Promise<void> {
    if (this.ctx === null) return;
    this.sync();
    const now = this.clock.now();
    const update = eventUpdate(envelope);
    if (update === null) return;
    const { userId, apply } = update;
    // Accounts linked with the event's workspace, or without one (Slack user ids are unique).
    const candidates = new Set<string>(['', ...update.teams]);
    const jobs: Promise<void>[] = [];
    for (const wsId of candidates) {
      const ws = this.workspaces.get(wsId);
      const u = ws?.users.get(userId);
      if (ws === undefined || u === undefined) continue;
      apply(u);
      u.remapAt = remapAt(u, now);
      jobs.push(this.report(ws, u, now));
    }
    await Promise.all(jobs);
    this.arm();
  }
}
