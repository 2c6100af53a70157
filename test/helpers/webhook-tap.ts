import type { Clock } from '../../src/core/clock';
import type { Service } from '../../src/main';
import { verifyWebhook } from '../../src/webhooks';
import { Receiver } from './receiver';

export interface ChangeWebhook {
  readonly type: string;
  readonly data: {
    readonly user_id: string;
    readonly version: number;
    readonly previous: { readonly status: string };
    readonly current: {
      readonly status: string;
      readonly activity: string | null;
      readonly platforms: Record<string, unknown>;
    };
    readonly changed: string[];
  };
}

/**
 * A webhook endpoint on a loopback receiver, registered on a running service: what a downstream
 * orchestrator gets. Every event read through it has had its signature verified.
 */
export async function webhookTap(svc: Service, clock: Clock) {
  const receiver = await Receiver.start();
  const { secret } = await svc.webhooks.createEndpoint({ url: `${receiver.url}/presence` });
  const verified = (): ChangeWebhook[] =>
    receiver.received.map((r) =>
      verifyWebhook<ChangeWebhook>(secret, r.body, r.headers, { clock, toleranceSeconds: 86_400 }),
    );
  return {
    /** Waits until `pred` holds for the verified events received so far (the limit is for a stuck wait). */
    async until(pred: (events: ChangeWebhook[]) => boolean, timeoutMs = 60_000): Promise<ChangeWebhook[]> {
      const end = performance.now() + timeoutMs;
      for (;;) {
        const events = verified();
        if (pred(events)) return events;
        if (performance.now() > end)
          throw new Error(
            `webhooks received: ${JSON.stringify(events.map((e) => [e.data.user_id, e.data.current.status]))}`,
          );
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    /** Every event received so far, verified. */
    events: verified,
    statusesOf: (userId: string): string[] =>
      verified()
        .filter((e) => e.data.user_id === userId)
        .map((e) => e.data.current.status),
    close: () => receiver.close(),
  };
}
