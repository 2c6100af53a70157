/**
 * The stream workers' pool with real worker processes (forked from src/stream/workers/worker.ts):
 * they start from the main hub's position and exit when drained; one that stops reading its
 * channel (SIGSTOP) is killed once too much waits for it, and another is started, with the main
 * process's memory for it given back.
 */

import type { Log } from '../../src/core/log';
import type { PresenceReader } from '../../src/stream/hub';
import { ChangeMessage } from '../../src/stream/message';
import type { DeviceSessions } from '../../src/stream/service';
import { StreamWorkers } from '../../src/stream/workers/pool';
import { processAlive, until } from '../e2e/serve-process';

jest.setTimeout(60_000);

const errors: string[] = [];
const log: Log = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: (_obj, msg) => errors.push(msg ?? ''),
};
const reader: PresenceReader = {
  getManyJson: () => Buffer.from('{"presence":{},"unknown":[]}'),
  state: () => undefined,
};
const devices: DeviceSessions = {
  hold: () => Promise.resolve(),
  update: () => Promise.resolve(),
  release: () => Promise.resolve(),
  alive: () => undefined,
  stop: () => undefined,
  restarted: () => [],
  connected: 0,
};

let pool: StreamWorkers | null = null;

afterEach(async () => {
  pool?.drain();
  await pool?.stopped();
  pool = null;
  errors.length = 0;
});

describe('stream workers (real processes)', () => {
  it('start from the main hub, and exit when drained', async () => {
    pool = new StreamWorkers({ count: 2, log, logLevel: 'silent' });
    pool.start({ position: () => ({ epoch: 'ep', offset: 0 }), reader, devices, release: () => undefined });
    await pool.ready();
    expect(pool.running).toBe(2);
    const pids = pool.pids();
    expect(pids).toHaveLength(2);
    pool.drain();
    await pool.stopped();
    expect(pids.some(processAlive)).toBe(false);
    pool = null;
  });

  it('a worker that stops reading is killed past the unsent cap and started again', async () => {
    pool = new StreamWorkers({ count: 1, log, logLevel: 'silent', maxUnsentBytes: 2 * 1024 * 1024 });
    let offset = 0;
    pool.start({
      position: () => ({ epoch: 'ep', offset }),
      reader,
      devices,
      release: () => undefined,
    });
    await pool.ready();
    const [stopped] = pool.pids();
    process.kill(stopped!, 'SIGSTOP');
    // 64 KB changes, a batch per turn, until the pool gives up on the stopped worker.
    const json = JSON.stringify({ type: 'presence', pad: 'x'.repeat(64 * 1024) });
    for (let batch = 0; batch < 200 && errors.length === 0; batch++) {
      for (let i = 0; i < 8; i++) {
        offset += 1;
        pool.change(offset, ChangeMessage.ready(json, 'u', offset, `ep:${offset}`));
      }
      await new Promise((r) => setImmediate(r));
    }
    await until(() => !processAlive(stopped!), 'the stopped worker killed');
    expect(errors).toContain(
      'a stream worker stopped taking what it is sent: killing it (its clients resume elsewhere)',
    );
    // About the cap (2 MB: 32 changes), plus what its channel's buffers took, before it was cut
    // off, not the 100 MB the loop would have offered.
    console.log(`changes offered before the cut: ${offset}`);
    expect(offset).toBeLessThan(80);
    await until(() => pool!.running === 1 && !pool!.pids().includes(stopped!), 'another worker started');
    expect(pool.restarts).toBe(1);
  });
});
