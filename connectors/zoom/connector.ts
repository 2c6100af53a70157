/**
 * @module connectors/zoom/connector
 * Zoom, polled: `GET /v2/users/{id}/presence_status` for every linked Zoom account, spaced to the
 * account's rate-limit class, to reconcile what the `user.presence_status_updated` webhooks push
 * (Zoom delivers nothing while an endpoint is down, so pushes alone can miss changes).
 * The token comes from the connection layer: a Server-to-Server `account_credentials` token,
 * fetched again ahead of its one-hour expiry.
 */

import type { Clock } from '../../src/core/clock';
import type { Connector, ConnectorContext, ConnectorHealth } from '../../src/core/connector';
import { zoom } from './descriptor';
import { toZoomPresence } from './map';
import type { ZoomPresenceStatusResponse } from './types';

export interface ZoomConnectorOptions {
  /** ZOOM_API_URL; the `/v2` base. */
  readonly apiUrl?: string;
  /** A valid access token (the connection layer refreshes it ahead of expiry). */
  readonly token: () => Promise<string>;
  readonly clock: Clock;
  /** Between two rounds over all linked users (default 5 minutes: the webhooks carry changes). */
  readonly pollIntervalMs?: number;
  /** Requests per second this connector may spend (MEDIUM class: 2/s Free, 20/s Pro, 60/s Business+). */
  readonly perSecond?: number;
  /** Waits between requests; injected so tests need not sleep. */
  readonly sleep?: (ms: number) => Promise<void>;
  readonly fetch?: typeof fetch;
  /** No timers: the caller drives `pollOnce` (tests). */
  readonly manual?: boolean;
}

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

export class ZoomConnector implements Connector {
  readonly descriptor = { ...zoom, mode: 'poll' as const, notes: `${zoom.notes} This instance polls.` };
  private ctx: ConnectorContext | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private lastSuccessAt: number | null = null;
  private lastError: string | null = null;
  private nextPollAt: number | null = null;
  private failures = 0;
  private readonly unknownValues = new Set<string>();
  private readonly apiUrl: string;
  private readonly intervalMs: number;
  private readonly gapMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly fetch: typeof fetch;

  constructor(private readonly options: ZoomConnectorOptions) {
    this.apiUrl = (options.apiUrl ?? 'https://api.zoom.us/v2').replace(/\/+$/, '');
    this.intervalMs = options.pollIntervalMs ?? 5 * 60_000;
    this.gapMs = 1000 / (options.perSecond ?? 10);
    this.sleep = options.sleep ?? realSleep;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  start(ctx: ConnectorContext): Promise<void> {
    this.ctx = ctx;
    if (this.options.manual === true) return Promise.resolve();
    const loop = (): void => {
      this.running = this.pollOnce().finally(() => {
        this.running = null;
      });
    };
    this.timer = setInterval(loop, this.intervalMs);
    this.timer.unref();
    loop();
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    this.ctx = null;
  }

  health(): ConnectorHealth {
    const state =
      this.ctx === null ? 'off' : this.failures === 0 ? 'ok' : this.failures < 3 ? 'degraded' : 'down';
    return {
      state,
      lastSuccessAt: this.lastSuccessAt,
      lastError: this.lastError,
      nextPollAt: this.nextPollAt,
    };
  }

  /** One round over every linked Zoom account; resolves when it is done. */
  async pollOnce(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === null) return;
    this.nextPollAt = ctx.clock.now() + this.intervalMs;
    for (const account of ctx.accounts()) {
      if (this.ctx === null) return;
      // Another node polls the accounts whose polling shares it holds.
      if (ctx.polls?.(account) === false) continue;
      const wait = await this.pollUser(ctx, account.externalId, account.workspaceId);
      await this.sleep(Math.max(this.gapMs, wait));
    }
  }

  /** Polls one user; returns how long to wait before the next request (Retry-After, back-off). */
  private async pollUser(ctx: ConnectorContext, userId: string, workspaceId: string): Promise<number> {
    let res: Response;
    try {
      const token = await this.options.token();
      // https://developers.zoom.us/docs/api/users/#tag/users/GET/users/{userId}/presence_status
      res = await this.fetch(`${this.apiUrl}/users/${encodeURIComponent(userId)}/presence_status`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(10_000),
      });
    } catch (error) {
      return this.failed(`request failed: ${(error as Error).message}`);
    }
    if (res.status === 429) {
      await res.arrayBuffer();
      const retry = Number(res.headers.get('retry-after'));
      this.failed('rate limited (429)');
      return Number.isFinite(retry) && retry > 0 ? retry * 1000 : 60_000;
    }
    if (!res.ok) {
      const text = await res.text();
      return this.failed(
        `HTTP ${res.status}${res.status === 401 ? ' (token refused)' : ''}: ${text.slice(0, 120)}`,
      );
    }
    const body = (await res.json()) as ZoomPresenceStatusResponse;
    const mapped = toZoomPresence(body, ctx.clock.now());
    if (mapped === null) {
      if (!this.unknownValues.has(body.status))
        ctx.log.warn({ value: body.status }, 'unknown Zoom presence value ignored');
      this.unknownValues.add(body.status);
    } else {
      await ctx.report({
        account: { platform: 'zoom', externalId: userId, workspaceId },
        presence: mapped,
        ttlMs: 3 * this.intervalMs,
      });
    }
    this.failures = 0;
    this.lastError = null;
    this.lastSuccessAt = ctx.clock.now();
    return 0;
  }

  private failed(message: string): number {
    this.failures += 1;
    this.lastError = message;
    // Back off exponentially on repeated failures, up to a minute.
    return Math.min(60_000, 500 * 2 ** Math.min(this.failures, 7));
  }
}
