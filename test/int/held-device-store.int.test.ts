/**
 * The held-device port on SQLite: the device observations stream connections held, found by
 * their label, and nothing else (an HTTP heartbeat's entry, another platform's, another label).
 */

import { join } from 'node:path';

import { SqliteHeldDeviceStore } from '../../src/store/held-devices';
import { CONNECTION_LABEL } from '../../src/stream/devices';
import { testEngine, tmpDir } from '../helpers/engine';

const tmp = tmpDir();
afterAll(() => tmp.cleanup());

it('lists the entries a connection held, by label, with their state and expiry', async () => {
  const t = await testEngine(join(tmp.dir, 'held.db'));
  try {
    const acks: Promise<unknown>[] = [];
    const via = { label: CONNECTION_LABEL, raw: { connection: 'websocket' } };
    acks.push(t.engine.heartbeat('alice', 'laptop', 'online', null, 60_000, via));
    acks.push(t.engine.heartbeat('alice', 'phone', 'busy', 'in_meeting', 30_000, via));
    // Neither of these was held by a connection.
    acks.push(t.engine.heartbeat('bob', 'desk', 'online', null, 60_000));
    acks.push(t.engine.heartbeat('carol', 'tab', 'online', null, 60_000, { label: `${CONNECTION_LABEL}x` }));
    await t.engine.flush();
    await Promise.all(acks);

    const held = new SqliteHeldDeviceStore(t.db).list(CONNECTION_LABEL);
    const now = t.clock.now();
    expect([...held].sort((a, b) => a.deviceId.localeCompare(b.deviceId))).toEqual([
      { userId: 'alice', deviceId: 'laptop', status: 'online', activity: null, expiresAt: now + 60_000 },
      { userId: 'alice', deviceId: 'phone', status: 'busy', activity: 'in_meeting', expiresAt: now + 30_000 },
    ]);
    expect(new SqliteHeldDeviceStore(t.db).list('nobody')).toEqual([]);
  } finally {
    t.close();
  }
});
