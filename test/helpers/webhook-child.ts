/**
 * A child process for the webhook crash test: the engine and the webhook service on one SQLite
 * file, delivering to a receiver in the parent.
 *
 *   webhook-child <db> <receiver-url> burst   streams changes, prints "ack <user> <version> <status>" per
 *                                             committed change, until killed
 *   webhook-child <db> <receiver-url> drain   only delivers what the outbox holds, until killed
 *
 * The first run creates the endpoint and prints "endpoint <id> <secret>".
 */
import { PresenceEngine } from '../../src/aggregator/engine';
import { systemClock } from '../../src/core/clock';
import { Ladder } from '../../src/core/presence';
import { asyncSqlite } from '../../src/store/async-sqlite';
import { openSqliteStores } from '../../src/store/sqlite';
import { WebhookService } from '../../src/webhooks';
import { streamChanges } from './stream-changes';
import { testVault } from './webhook-vault';

const [path, url, mode] = process.argv.slice(2);
if (path === undefined || url === undefined || (mode !== 'burst' && mode !== 'drain')) {
  throw new Error('usage: webhook-child <db> <receiver-url> burst|drain');
}
const stores = asyncSqlite(openSqliteStores(path));
const engine = new PresenceEngine({
  clock: systemClock,
  store: stores.presence,
  ladder: new Ladder(),
});
// Before the engine loads: every change from now on goes through the outbox.
const opening = WebhookService.open({
  store: stores.webhooks,
  vault: testVault,
  engine,
  clock: systemClock,
  allowPrivateTargets: true,
  pruneSchedule: null,
  jitter: 0,
  // Quick retries, so that a delivery cut by the kill does not wait 5 s after the restart.
  retrySchedule: [0, 50, 100, 200, 400, 800],
});
async function main(): Promise<void> {
  const webhooks = await opening;
  await engine.load();
  if (webhooks.listEndpoints().length === 0) {
    const ep = await webhooks.createEndpoint({ url: url! });
    process.stdout.write(`endpoint ${ep.id} ${ep.secret}\n`);
  }
  webhooks.start();
  if (mode === 'drain') {
    process.stdout.write('ready\n');
    setInterval(() => undefined, 1 << 30);
    return;
  }
  await streamChanges(engine, {
    users: 40,
    // Let deliveries interleave with the stream, as they would under real load.
    afterRound: () => new Promise((resolve) => setImmediate(resolve)),
  });
}

void main();
