/**
 * The change stream both crash-test children write until they are killed: each round moves every
 * user one step along four statuses, and each change is printed as "ack <user> <version> <status>"
 * once the engine has committed it.
 */
import type { PresenceEngine } from '../../src/aggregator/engine';
import type { Status } from '../../src/core/presence';

const STATUSES: Status[] = ['online', 'busy', 'away', 'idle'];

export async function streamChanges(
  engine: PresenceEngine,
  options: { users: number; afterRound?: () => Promise<void> },
): Promise<never> {
  for (let round = 0; ; round++) {
    const acks: Promise<string>[] = [];
    for (let u = 0; u < options.users; u++) {
      const userId = `u${u}`;
      engine.ensureUser(userId);
      const status = STATUSES[(round + u) % STATUSES.length]!;
      const ack = engine.report(userId, {
        platform: 'teams',
        ttlMs: 3_600_000,
        state: { status, activity: null, customStatus: null, source: 'app', raw: status, label: status },
      });
      const version = engine.state(userId)!.version;
      acks.push(ack.then(() => `ack ${userId} ${version} ${status}`));
    }
    process.stdout.write(`${(await Promise.all(acks)).join('\n')}\n`);
    await options.afterRound?.();
  }
}
