/**
 * `presence serve` as a real process, on real time, while another process (this test) holds the
 * database's write lock: a write is answered 503 with Retry-After once the engine's retries run
 * out, the lock still held (so it is bounded, never left hanging); `/healthz` and reads keep
 * answering; `/readyz` names the cause; and once the lock is gone everything recovers without a
 * restart.
 */

import { holdWriteLock } from '../helpers/store-faults';
import { startServe, until, type ServeProcess } from './serve-process';

describe('presence serve while another process holds the database lock', () => {
  let svc: ServeProcess;
  beforeAll(async () => {
    svc = await startServe();
  });
  afterAll(async () => {
    expect(await svc.stop()).toBe(0);
  });

  const heartbeat = (device: string) =>
    fetch(`${svc.base}/v1/heartbeats`, {
      method: 'POST',
      headers: { authorization: `Bearer ${svc.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: 'eve', device_id: device }),
    });

  it('answers 503 + Retry-After while locked, says so in /readyz, and recovers by itself', async () => {
    expect((await heartbeat('laptop')).status).toBe(204);
    const lock = holdWriteLock(svc.env.PRESENCE_DB!);
    try {
      const refused = await heartbeat('phone');
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('2');
      const body = (await refused.json()) as { error: { code: string; details: { code: string }[] } };
      expect(body.error.code).toBe('unavailable');
      expect(body.error.details.map((d) => d.code)).toEqual(['database_locked']);

      const ready = await fetch(`${svc.base}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ ready: false, reason: 'database_locked' });
      expect((await fetch(`${svc.base}/healthz`)).status).toBe(200);
      const read = await svc.api('GET', '/v1/presence/eve');
      expect(read.status).toBe(200);
      expect(Object.keys(read.body.platforms.device.devices)).toEqual(['laptop']);
    } finally {
      lock.release();
    }
    await until(async () => (await fetch(`${svc.base}/readyz`)).status === 200, '/readyz to recover');
    expect((await heartbeat('phone')).status).toBe(204);
    const read = await svc.api('GET', '/v1/presence/eve');
    expect(Object.keys(read.body.platforms.device.devices).sort()).toEqual(['laptop', 'phone']);
  });
});
