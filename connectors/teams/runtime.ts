/**
 * @module connectors/teams/runtime
 * What the Teams connector's parts share while it runs: the injected clock, the host's context
 * and log once `start` has passed them, whether a stop is under way, the work in flight, and the
 * linked accounts the poller and the subscription manager both work from.
 */

import type { Clock } from '../../src/core/clock';
import type { ConnectorContext } from '../../src/core/connector';
import type { Log } from '../../src/core/log';
import type { AccountRef } from '../../src/core/ports';
import { GUID, lower } from './ids';

export class TeamsRuntime {
  ctx: ConnectorContext | null = null;
  log: Log;
  stopped = false;

  private readonly tenant: string;
  private readonly loggedOnce = new Set<string>();
  /** Work started so far and not yet settled: polls, notifications, renewals. */
  readonly inflight = new Set<Promise<unknown>>();

  constructor(
    readonly clock: Clock,
    log: Log,
    tenantId: string,
  ) {
    this.log = log;
    this.tenant = lower(tenantId);
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.then(
      () => this.inflight.delete(p),
      () => this.inflight.delete(p),
    );
    return p;
  }

  /** Per key, so that an account or a payload seen again every cycle does not flood the log. */
  logOnce(key: string, message: string, extra: object = {}): void {
    if (this.loggedOnce.has(key)) return;
    this.loggedOnce.add(key);
    this.log.warn({ platform: 'teams', ...extra }, message);
  }

  /** Linked Teams accounts of this tenant, by lower-cased AAD object id. */
  index(): Map<string, AccountRef[]> {
    const out = new Map<string, AccountRef[]>();
    const anyTenant = !GUID.test(this.tenant);
    for (const a of this.ctx?.accounts() ?? []) {
      if (a.platform !== 'teams') continue;
      if (!anyTenant && a.workspaceId !== '' && lower(a.workspaceId) !== this.tenant) {
        this.logOnce(`tenant:${a.workspaceId}`, 'Teams account of another tenant skipped', {
          workspaceId: a.workspaceId,
        });
        continue;
      }
      if (!GUID.test(a.externalId)) {
        // Graph answers 400 to the whole batch for one malformed id.
        this.logOnce(
          `id:${a.externalId}`,
          'Teams account skipped: external_id must be the AAD object id (a GUID)',
          { externalId: a.externalId },
        );
        continue;
      }
      const id = lower(a.externalId);
      const list = out.get(id);
      if (list === undefined) out.set(id, [a]);
      else list.push(a);
    }
    return out;
  }
}
