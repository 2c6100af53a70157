/**
 * The SQLite adapter's own rule (store/async-sqlite.ts): transactions whose bodies await run one at
 * a time, a call handed the open transaction runs inside it, any other call waits for its end.
 */

import { join } from 'node:path';

import { asyncSqlite, type AsyncSqliteStores } from '../../../src/store/async-sqlite';
import { openSqliteStores } from '../../../src/store/sqlite';
import { tmpDir } from '../../helpers/engine';
import { user } from './backends';

let stores: AsyncSqliteStores;
let cleanup: () => void;

beforeEach(() => {
  const tmp = tmpDir();
  cleanup = tmp.cleanup;
  stores = asyncSqlite(openSqliteStores(join(tmp.dir, 'presence.db')));
});

afterEach(async () => {
  await stores.close();
  cleanup();
});

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const ids = async (): Promise<string[]> =>
  [...(await stores.presence.loadAll())].map((u) => u.user.userId).sort();

it('runs awaiting transactions one at a time, in the order asked', async () => {
  const order: string[] = [];
  const body = (name: string) => async () => {
    order.push(`${name} begin`);
    await tick();
    order.push(`${name} end`);
  };
  await Promise.all([
    stores.transaction(body('a')),
    stores.transaction(body('b')),
    stores.transaction(body('c')),
  ]);
  expect(order).toEqual(['a begin', 'a end', 'b begin', 'b end', 'c begin', 'c end']);
});

it('runs a call handed the open transaction inside it, and rolls it back with it', async () => {
  await expect(
    stores.presence.write([user('alice')], async (tx) => {
      await stores.webhooks.insertOutbox(
        tx,
        [
          {
            msgId: 'msg_1',
            type: 'presence.changed',
            userId: 'alice',
            version: 1,
            createdAt: 1,
            payload: '{}',
          },
        ],
        [],
      );
      throw new Error('refused');
    }),
  ).rejects.toThrow('refused');
  expect(await ids()).toEqual([]);
  expect(stores.sync.db.prepare('SELECT count(*) AS n FROM webhook_events').get()).toEqual({ n: 0 });
});

it('makes a call without the transaction wait for its commit, never joining one that rolls back', async () => {
  let outsideDone = false;
  const outside: Promise<void>[] = [];
  const failed = stores.transaction(async () => {
    outside.push(
      stores.presence.write([user('bob')]).then(() => {
        outsideDone = true;
      }),
    );
    await tick();
    expect(outsideDone).toBe(false);
    throw new Error('refused');
  });
  await expect(failed).rejects.toThrow('refused');
  await Promise.all(outside);
  expect(outsideDone).toBe(true);
  expect(await ids()).toEqual(['bob']);
});

it('serves calls at once when no transaction is open', async () => {
  await stores.presence.write([user('carol')]);
  expect(await ids()).toEqual(['carol']);
});
