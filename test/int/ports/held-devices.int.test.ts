/**
 * Port conformance: `HeldDeviceStore`, on SQLite and on PostgreSQL (backends.ts).
 */

import type { Observation } from '../../../src/core/presence';
import { forEachStore, user } from './backends';

const device = (deviceId: string, label: string, over: Partial<Observation> = {}): Observation => ({
  platform: 'device',
  device: deviceId,
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: null,
  label,
  decay: null,
  observedAt: 1,
  changedAt: 1,
  expiresAt: 5_000,
  ...over,
});

forEachStore('HeldDeviceStore', (backend) => {
  it('lists the device observations whose label is the one given, alone or followed by more', async () => {
    const s = await backend.open();
    await s.presence.write([
      user('ana'),
      user('bo'),
      { op: 'observation', userId: 'ana', obs: device('phone', 'stream') },
      {
        op: 'observation',
        userId: 'ana',
        obs: device('laptop', 'stream ws', { status: 'busy', activity: 'in_call' }),
      },
      { op: 'observation', userId: 'bo', obs: device('tablet', 'heartbeat') },
      { op: 'observation', userId: 'bo', obs: device('watch', 'streamer') },
      { op: 'observation', userId: 'bo', obs: { ...device('', 'stream'), platform: 'slack' } },
    ]);
    const held = (await s.heldDevices.list('stream')).sort((a, b) => a.deviceId.localeCompare(b.deviceId));
    expect(held).toEqual([
      { userId: 'ana', deviceId: 'laptop', status: 'busy', activity: 'in_call', expiresAt: 5_000 },
      { userId: 'ana', deviceId: 'phone', status: 'online', activity: null, expiresAt: 5_000 },
    ]);
    expect(await s.heldDevices.list('nothing')).toEqual([]);
  });
});
