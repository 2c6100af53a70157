import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

import { Webhook } from 'standardwebhooks';

import { migrate, openDb } from '../../src/store/db';
import { tmpDir } from '../helpers/engine';
import { Receiver } from '../helpers/receiver';

const ROOT = resolve(__dirname, '../..');

function child(db: string, url: string, mode: 'burst' | 'drain'): ChildProcess {
  // `--require tsx/cjs` keeps it one process: the tsx CLI would put a second one under it, which
  // a SIGKILL to the first would not reach.
  return spawn(
    process.execPath,
    ['--require', 'tsx/cjs', join(ROOT, 'test/helpers/webhook-child.ts'), db, url, mode],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
}

const exited = (c: ChildProcess): Promise<NodeJS.Signals | null> =>
  new Promise((done) => c.on('exit', (_code, signal) => done(signal)));

describe('webhook crash recovery', () => {
  const tmp = tmpDir();
  let receiver: Receiver;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    receiver = await Receiver.start(() => 204);
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await receiver.close();
    tmp.cleanup();
  });

  it('after kill -9 during a burst, every committed change reaches the receiver after restart', async () => {
    const path = join(tmp.dir, 'webhooks-crash.db');
    const first = child(path, receiver.url, 'burst');
    children.push(first);
    const firstExit = exited(first);
    let secret = '';
    let acks = 0;
    for await (const line of createInterface({ input: first.stdout! })) {
      const words = line.split(' ');
      if (words[0] === 'endpoint') secret = words[2]!;
      if (words[0] !== 'ack') continue;
      acks += 1;
      // At an odd moment, well into the stream, with deliveries in flight.
      if (acks === 2013) first.kill('SIGKILL');
    }
    expect(await firstExit).toBe('SIGKILL');
    expect(secret).toMatch(/^whsec_/);

    // What the dead process committed: every change, and its outbox rows.
    const db = openDb(path);
    migrate(db);
    const committed = db.prepare('SELECT user_id, version FROM transitions').all() as {
      user_id: string;
      version: number;
    }[];
    expect(committed.length).toBeGreaterThanOrEqual(2013);
    const pendingAtCrash = db
      .prepare("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
      .pluck()
      .get() as number;
    db.close();
    const receivedAtCrash = new Set(receiver.received.map((r) => r.headers['webhook-id'])).size;
    // The kill did land mid-stream: some committed changes had not been delivered yet.
    expect(pendingAtCrash).toBeGreaterThan(0);
    expect(receivedAtCrash).toBeLessThan(committed.length);

    const second = child(path, receiver.url, 'drain');
    children.push(second);
    const secondExit = exited(second);
    const key = (u: unknown, v: unknown): string => `${String(u)}#${String(v)}`;
    const wanted = new Set(committed.map((c) => key(c.user_id, c.version)));
    const got = new Set<string>();
    // A limit for a stuck drain only: it ends as soon as every change has arrived.
    const deadline = performance.now() + 120_000;
    while (performance.now() < deadline) {
      for (const b of receiver.bodies()) got.add(key(b.data.user_id, b.data.version));
      if ([...wanted].every((k) => got.has(k))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    second.kill('SIGKILL');
    await secondExit;
    if (process.env.WEBHOOK_CRASH_DEBUG !== undefined) {
      console.log({
        committed: committed.length,
        pendingAtCrash,
        receivedAtCrash,
        requests: receiver.received.length,
      });
    }

    expect([...wanted].filter((k) => !got.has(k))).toEqual([]);
    // At least once, deduplicable: one webhook-id per change, the same body each time it came.
    const byId = new Map<string, string>();
    const wh = new Webhook(secret);
    for (const r of receiver.received) {
      const id = r.headers['webhook-id']!;
      expect(byId.get(id) ?? r.body).toBe(r.body);
      byId.set(id, r.body);
    }
    for (const r of receiver.received) expect(() => wh.verify(r.body, r.headers)).not.toThrow();
    expect(byId.size).toBe(wanted.size);
    // Per user, each change was first seen in version order.
    const firstSeen = new Map<string, number[]>();
    const seenIds = new Set<string>();
    for (const r of receiver.received) {
      const id = r.headers['webhook-id']!;
      if (seenIds.has(id)) continue;
      seenIds.add(id);
      const b = JSON.parse(r.body) as { data: { user_id: string; version: number } };
      const list = firstSeen.get(b.data.user_id) ?? [];
      list.push(b.data.version);
      firstSeen.set(b.data.user_id, list);
    }
    for (const versions of firstSeen.values()) {
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
    }
  });
});
