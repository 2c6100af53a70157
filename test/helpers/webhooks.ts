/**
 * What the webhook integration tests share: the WebhookService on a test engine with the settings
 * they assume, a Teams report that causes a change, and loopback receivers closed together.
 */
import type { CustomStatus, Status } from '../../src/core/presence';
import { WebhookService, type WebhookServiceOptions } from '../../src/webhooks';
import type { TestEngine } from './engine';
import { Receiver, type Responder } from './receiver';
import { testVault } from './webhook-vault';

/**
 * The service on `t`'s engine and database: the test vault, loopback targets allowed (the
 * receivers), no jitter (exact retry times), no prune timer. `options` override any of these.
 */
export function webhookService(
  t: TestEngine,
  options: Partial<WebhookServiceOptions> = {},
): Promise<WebhookService> {
  return WebhookService.open({
    store: t.stores.webhooks,
    vault: testVault,
    engine: t.engine,
    clock: t.clock,
    allowPrivateTargets: true,
    jitter: 0,
    pruneSchedule: null,
    ...options,
  });
}

/** Reports `status` from the Teams app for `userId` (created if need be), live for an hour. */
export async function reportTeams(
  t: TestEngine,
  userId: string,
  status: Status,
  customStatus: CustomStatus | null = null,
): Promise<void> {
  t.engine.ensureUser(userId);
  await t.engine.report(userId, {
    platform: 'teams',
    ttlMs: 3_600_000,
    state: { status, activity: null, customStatus, source: 'app', raw: status, label: status },
  });
}

/** Loopback receivers started during a test, closed together after it. */
export class Receivers {
  private readonly started: Receiver[] = [];

  async start(respond?: Responder): Promise<Receiver> {
    const r = await Receiver.start(respond);
    this.started.push(r);
    return r;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.started.splice(0).map((r) => r.close()));
  }
}
