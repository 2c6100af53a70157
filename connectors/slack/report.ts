/**
 * @module connectors/slack/report
 * How a Slack user's combined state becomes a report: mapped by the pure mappers, a value the
 * mapper does not know logged once and never guessed into a status, and in push-only mode what
 * the events said until the end Slack gave (a cleared state ends at once).
 */

import type { ConnectorContext } from '../../src/core/connector';
import type { Log } from '../../src/core/log';
import { toSlackPresence, toSlackPushedPresence } from './map';
import { NOTHING_SET, type UserState, type Workspace } from './state';

export interface SlackReporterOptions {
  /** The connector's log now (it is the host's once started). */
  readonly log: () => Log;
  readonly pushOnly: boolean;
  /** How long a push-only state lives when Slack gives no end. */
  readonly pushTtlMs: number;
  /** The TTL of a polled report in a workspace. */
  readonly ttlMs: (workspaceId: string) => number;
  /** A push-only report went through (the connector's last success). */
  readonly reported: (at: number) => void;
}

export class SlackReporter {
  private readonly unknownValues = new Set<string>();

  constructor(private readonly o: SlackReporterOptions) {}

  async report(ctx: ConnectorContext, ws: Workspace, u: UserState, now: number): Promise<void> {
    if (this.o.pushOnly) return this.reportPushed(ctx, u, now);
    if (u.presence === null) return;
    const mapped = toSlackPresence({ presence: u.presence, dnd: u.dnd, profile: u.profile }, now);
    if (mapped === null) {
      // Never guessed into a status; said once per value.
      const value = JSON.stringify(u.presence.presence);
      if (!this.unknownValues.has(value)) {
        this.unknownValues.add(value);
        this.o
          .log()
          .warn({ platform: 'slack', raw: u.presence.presence }, 'unknown slack presence value ignored');
      }
      return;
    }
    try {
      await ctx.report({ account: u.account, presence: mapped, ttlMs: this.o.ttlMs(ws.id) });
    } catch (err) {
      this.o.log().error({ platform: 'slack', workspaceId: ws.id, err }, 'slack report failed');
    }
  }

  /** Push-only: what the events say, until the end Slack gives; a cleared state is ended. */
  private async reportPushed(ctx: ConnectorContext, u: UserState, now: number): Promise<void> {
    const pushed = toSlackPushedPresence({ dnd: u.dnd, profile: u.profile }, now, this.o.pushTtlMs);
    try {
      if (pushed !== null) {
        await ctx.report({ account: u.account, presence: pushed.mapped, ttlMs: pushed.until - now });
      } else {
        // Nothing is set: a report that ends at once replaces whatever is still live (the engine
        // keeps one report per platform and lets an expired one go). Sent even when nothing
        // was reported by this process, so that a state pushed before a restart ends too.
        await ctx.report({
          account: u.account,
          presence: NOTHING_SET,
          ttlMs: 1,
        });
      }
      this.o.reported(now);
    } catch (err) {
      this.o.log().error({ platform: 'slack', err }, 'slack report failed');
    }
  }
}
