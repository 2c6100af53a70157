/**
 * What only the PostgreSQL stores do, for several nodes on one database: conditional version
 * writes, delivery claims (SKIP LOCKED, leases), the migration runner, and a database that does
 * not answer. Each test file has a database of its own (backends.ts).
 */

import { createServer, type AddressInfo } from 'node:net';

import { MigrationError, type Migration } from '../../../src/store/db';
import { openPgStores, PgUnavailableError, StaleVersionError, type PgStores } from '../../../src/store/pg';
import { migrate, readPgMigrations } from '../../../src/store/pg/migrate';
import { openPool } from '../../../src/store/pg/pool';
import { freePort } from '../../helpers/free-port';
import { createTestDatabase, delivery, endpoint, event, loadAll, user } from './backends';
import type { AggregateRecord, WriteOp } from '../../../src/core/ports';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
const opened: PgStores[] = [];

/** A node: stores on a pool of its own, on the shared test database. */
async function node(): Promise<PgStores> {
  const s = await openPgStores({ connectionString: database.url, max: 3 });
  opened.push(s);
  return s;
}

beforeAll(async () => {
  database = await createTestDatabase();
});
beforeEach(async () => {
  const s = await node();
  const { rows } = await s.pool.query<{ tablename: string }>(
    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename != 'schema_migrations'",
  );
  await s.pool.query(`TRUNCATE ${rows.map((r) => r.tablename).join(', ')} RESTART IDENTITY CASCADE`);
});
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});
afterAll(async () => {
  await database.drop();
});

const aggregate = (userId: string, version: number): WriteOp => {
  const a: AggregateRecord = {
    status: 'online',
    activity: null,
    customStatus: null,
    source: 'app',
    version,
    lastActiveAt: null,
    updatedAt: version,
  };
  return { op: 'aggregate', userId, aggregate: a };
};
const transition = (userId: string, version: number): WriteOp => ({
  op: 'transition',
  transition: {
    userId,
    version,
    at: version,
    fromStatus: 'offline',
    toStatus: 'online',
    fromActivity: null,
    toActivity: null,
    source: 'app',
    platform: 'slack',
  },
});

describe('conditional version writes', () => {
  it('refuses a stale or skipped version, and stores nothing of that write', async () => {
    const s = await node();
    await s.presence.write([user('ana'), aggregate('ana', 1), transition('ana', 1)]);
    await s.presence.write([aggregate('ana', 2), transition('ana', 2)]);
    for (const version of [2, 1, 4]) {
      await expect(
        s.presence.write([user('bo'), transition('ana', version), aggregate('ana', version)]),
      ).rejects.toThrow(StaleVersionError);
    }
    const users = await loadAll(s);
    expect(users.map((u) => u.user.userId)).toEqual(['ana']);
    expect(users[0]!.aggregate?.version).toBe(2);
    expect((await s.presence.history('ana', { limit: 10 })).map((t) => t.version)).toEqual([2, 1]);
    await s.presence.write([aggregate('ana', 3)]);
    expect((await loadAll(s))[0]!.aggregate?.version).toBe(3);
  });

  it('two nodes making the same change from the same version: exactly one lands', async () => {
    const a = await node();
    const b = await node();
    await a.presence.write([user('ana'), aggregate('ana', 1)]);
    const results = await Promise.allSettled([
      a.presence.write([aggregate('ana', 2), transition('ana', 2)]),
      b.presence.write([aggregate('ana', 2), transition('ana', 2)]),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected');
    expect(refused?.reason).toBeInstanceOf(StaleVersionError);
    expect((await a.presence.history('ana', { limit: 10 })).map((t) => t.version)).toEqual([2]);
  });
});

describe('expected versions (the group commit of several nodes)', () => {
  it("skips a stale user's ops, applies the others', and names the stale users", async () => {
    const s = await node();
    await s.presence.write([user('ana'), user('bo'), aggregate('ana', 1), aggregate('ana', 2)]);
    const stale = await s.presence.write(
      [aggregate('ana', 2), transition('ana', 2), aggregate('bo', 1), transition('bo', 1), user('cy')],
      undefined,
      new Map([
        ['ana', 1],
        ['bo', 0],
        ['cy', 0],
      ]),
    );
    expect([...stale]).toEqual(['ana']);
    const users = new Map((await loadAll(s)).map((u) => [u.user.userId, u]));
    expect(users.get('ana')?.aggregate?.version).toBe(2);
    expect(users.get('bo')?.aggregate?.version).toBe(1);
    expect(users.has('cy')).toBe(true);
    expect(await s.presence.history('ana', { limit: 10 })).toEqual([]);
    expect((await s.presence.history('bo', { limit: 10 })).map((t) => t.version)).toEqual([1]);
  });

  it('a new user another node inserts meanwhile (no row to lock beforehand) is stale, not an error', async () => {
    const a = await node();
    const b = await node();
    // A's transaction inserts the user's first version and holds it uncommitted.
    const held = await a.pool.connect();
    try {
      await held.query('BEGIN');
      await held.query(
        "INSERT INTO users (user_id, display_name, timezone, created_at, updated_at) VALUES ('dee', NULL, NULL, 1, 1)",
      );
      await held.query(
        "INSERT INTO aggregates (user_id, status, activity, custom_status, source, version, last_active_at, updated_at) VALUES ('dee', 'away', NULL, NULL, 'app', 1, NULL, 1)",
      );
      // B's write of the same first version: its insert waits on A's row, then meets it.
      const writing = b.presence.write(
        [user('dee'), aggregate('dee', 1), transition('dee', 1), user('eve'), aggregate('eve', 1)],
        undefined,
        new Map([
          ['dee', 0],
          ['eve', 0],
        ]),
      );
      for (;;) {
        const { rows } = await a.pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        );
        if (rows[0]!.n > 0) break;
        await new Promise((r) => setImmediate(r));
      }
      await held.query('COMMIT');
      expect([...(await writing)]).toEqual(['dee']);
    } finally {
      held.release();
    }
    const users = new Map((await loadAll(a)).map((u) => [u.user.userId, u]));
    expect(users.get('dee')?.aggregate).toMatchObject({ version: 1, status: 'away' });
    expect(users.get('eve')?.aggregate?.version).toBe(1);
    expect(await a.presence.history('dee', { limit: 10 })).toEqual([]);
  });
});

const ENDPOINT = endpoint('ep_1', { url: 'https://example.test/', events: null, sealedSecret: 'v1.s' });

/** Queues one delivery per lane given (in that order), due at `at`; returns their ids. */
async function queue(s: PgStores, lanes: readonly string[], at = 100): Promise<number[]> {
  return s.transaction(async (tx) => {
    const ids: number[] = [];
    for (const [i, lane] of lanes.entries()) {
      const written = await s.webhooks.insertOutbox(
        tx,
        [event(`m_${lane}_${i}_${at}`, 'presence.changed', null, i, at, '{}')],
        [delivery('ep_1', 0, lane, at, at, false, at)],
      );
      ids.push(...written.ids);
    }
    return ids;
  });
}

describe('delivery claims', () => {
  it('two nodes claiming at once never claim the same delivery, and together claim them all', async () => {
    const a = await node();
    const b = await node();
    await a.webhooks.saveEndpoint(ENDPOINT);
    const ids = await queue(
      a,
      Array.from({ length: 60 }, (_, i) => `u:user${i}`),
    );
    const claimed: Record<string, number[]> = { a: [], b: [] };
    for (let round = 0; round < 20; round++) {
      const [fromA, fromB] = await Promise.all([
        a.webhooks.claimDue('node-a', 1_000, 60_000, 7),
        b.webhooks.claimDue('node-b', 1_000, 60_000, 7),
      ]);
      claimed.a!.push(...fromA.map((r) => r.id));
      claimed.b!.push(...fromB.map((r) => r.id));
      if (fromA.length === 0 && fromB.length === 0) break;
    }
    const all = [...claimed.a!, ...claimed.b!];
    expect(new Set(all).size).toBe(all.length);
    expect(all.sort((x, y) => x - y)).toEqual(ids);
    const { rows } = await a.pool.query<{ claimed_by: string; n: number }>(
      'SELECT claimed_by, count(*)::int AS n FROM webhook_deliveries GROUP BY claimed_by ORDER BY claimed_by',
    );
    expect(rows).toEqual(
      [
        { claimed_by: 'node-a', n: claimed.a!.length },
        { claimed_by: 'node-b', n: claimed.b!.length },
      ].filter((r) => r.n > 0),
    );
  });

  it("a dead node's claim expires and another node claims the delivery again", async () => {
    const a = await node();
    const b = await node();
    await a.webhooks.saveEndpoint(ENDPOINT);
    const [id] = await queue(a, ['u:ana']);
    const first = await a.webhooks.claimDue('node-a', 1_000, 500, 10);
    expect(first.map((r) => [r.id, r.endpoint_id, r.msg_id])).toEqual([[id, 'ep_1', 'm_u:ana_0_100']]);
    expect(await b.webhooks.claimDue('node-b', 1_499, 500, 10)).toEqual([]);
    expect((await b.webhooks.claimDue('node-b', 1_500, 500, 10)).map((r) => r.id)).toEqual([id]);
    expect(await a.webhooks.claimDue('node-a', 1_600, 500, 10)).toEqual([]);
  });

  it('claims only the first pending delivery of each lane, due ones of enabled endpoints', async () => {
    const s = await node();
    await s.webhooks.saveEndpoint(ENDPOINT);
    const [ana1, bo1, ana2] = await queue(s, ['u:ana', 'u:bo', 'u:ana']);
    const [later] = await queue(s, ['u:cy'], 5_000);
    expect((await s.webhooks.claimDue('n', 1_000, 100_000, 10)).map((r) => r.id)).toEqual([ana1, bo1]);
    // Delivered: the claim is released with the outcome, and the lane's next one is due.
    await s.webhooks.writeOutcomes(
      [
        {
          deliveryId: ana1!,
          attempt: 1,
          at: 1_000,
          statusCode: 200,
          latencyMs: 1,
          error: null,
          nextAttemptAt: null,
          status: 'delivered',
        },
        {
          deliveryId: bo1!,
          attempt: 1,
          at: 1_000,
          statusCode: 503,
          latencyMs: 1,
          error: 'HTTP 503',
          nextAttemptAt: 3_000,
          status: 'pending',
        },
      ],
      [],
    );
    expect((await s.webhooks.claimDue('n', 1_001, 100_000, 10)).map((r) => r.id)).toEqual([ana2]);
    expect((await s.webhooks.claimDue('n', 3_000, 100_000, 10)).map((r) => r.id)).toEqual([bo1]);
    await s.webhooks.saveEndpoint({ ...ENDPOINT, enabled: false, disabledReason: 'manual', disabledAt: 1 });
    expect(await s.webhooks.claimDue('n', 10_000, 100_000, 10)).toEqual([]);
    await s.webhooks.saveEndpoint(ENDPOINT);
    expect((await s.webhooks.claimDue('n', 10_000, 100_000, 10)).map((r) => r.id)).toEqual([later]);
  });

  it("renews and releases only the node's own claims; filters by endpoint; reads the rest of a lane", async () => {
    const a = await node();
    const b = await node();
    await a.webhooks.saveEndpoint(ENDPOINT);
    await a.webhooks.saveEndpoint({ ...ENDPOINT, id: 'ep_2' });
    const [ana1, bo1, ana2, ana3] = await queue(a, ['u:ana', 'u:bo', 'u:ana', 'u:ana']);
    expect(await a.webhooks.claimDue('node-a', 1_000, 500, 10, ['ep_2'])).toEqual([]);
    expect((await a.webhooks.claimDue('node-a', 1_000, 500, 10, ['ep_1'])).map((r) => r.id)).toEqual([
      ana1,
      bo1,
    ]);
    // The lane behind a claimed head, in id order.
    expect((await b.webhooks.laneAfter('ep_1', 'u:ana', ana1!, 10)).map((r) => r.id)).toEqual([ana2, ana3]);
    expect((await b.webhooks.laneAfter('ep_1', 'u:ana', ana2!, 10)).map((r) => r.id)).toEqual([ana3]);
    // Renewed: still node-a's after the first lease; another node's renewal changes nothing.
    expect(await b.webhooks.renewClaims('node-b', [ana1!, bo1!], 5_000)).toEqual([]);
    expect((await a.webhooks.renewClaims('node-a', [ana1!, bo1!], 2_000)).sort()).toEqual([ana1, bo1].sort());
    expect(await b.webhooks.claimDue('node-b', 1_500, 500, 10)).toEqual([]);
    // A release by another node leaves the claim; node-a's own hands it over at once.
    await b.webhooks.releaseClaims('node-b', [ana1!]);
    expect(await b.webhooks.claimDue('node-b', 1_600, 500, 10)).toEqual([]);
    await a.webhooks.releaseClaims('node-a', [ana1!]);
    expect((await b.webhooks.claimDue('node-b', 1_600, 500, 10)).map((r) => r.id)).toEqual([ana1]);
    // A claim node-a lost is not renewed for it.
    expect(await a.webhooks.renewClaims('node-a', [ana1!], 9_000)).toEqual([]);
  });
});

describe('migrations', () => {
  it('a second run applies nothing; an edited or missing migration is refused', async () => {
    const pool = openPool({ connectionString: database.url, max: 2 });
    try {
      const files = readPgMigrations();
      // Numbered from 0001 without gaps.
      expect(files.map((m) => m.version)).toEqual(files.map((_, i) => String(i + 1).padStart(4, '0')));
      const again = await migrate(pool);
      expect(again.applied).toEqual([]);
      expect(again.upToDate).toEqual(files.map((m) => `${m.version}_${m.name}`));
      const edited: Migration[] = files.map((m, i) => (i === 1 ? { ...m, checksum: 'f'.repeat(64) } : m));
      await expect(migrate(pool, edited)).rejects.toThrow(/0002_api_keys was edited after it was applied/);
      await expect(migrate(pool, files.slice(0, 4))).rejects.toThrow(MigrationError);
    } finally {
      await pool.end();
    }
  });

  it('nodes migrating a fresh database at once apply each migration once', async () => {
    const fresh = await createTestDatabase();
    const pools = [0, 1, 2].map(() => openPool({ connectionString: fresh.url, max: 2 }));
    try {
      const reports = await Promise.all(pools.map((p) => migrate(p)));
      const applied = reports.flatMap((r) => r.applied).sort();
      expect(applied).toEqual(readPgMigrations().map((m) => `${m.version}_${m.name}`));
      const { rows } = await pools[0]!.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM schema_migrations',
      );
      expect(rows[0]!.n).toBe(readPgMigrations().length);
    } finally {
      for (const p of pools) await p.end();
      await fresh.drop();
    }
  });
});

describe('a database that does not answer', () => {
  it('fails to open with a clear error naming where, instead of hanging', async () => {
    const port = await freePort();
    const error = await openPgStores({
      connectionString: `postgres://postgres:pw@127.0.0.1:${port}/presence`,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PgUnavailableError);
    expect((error as Error).message).toMatch(
      new RegExp(`^PostgreSQL at 127\\.0\\.0\\.1:${port}/presence did not answer: .*ECONNREFUSED`),
    );
    expect((error as Error).message).not.toContain('pw');
  });

  it('fails to open after the connect timeout when something accepts but never answers', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const error = await openPgStores({
        connectionString: `postgres://postgres@127.0.0.1:${port}/presence`,
        connectTimeoutMs: 300,
      }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(PgUnavailableError);
      expect((error as Error).message).toMatch(
        new RegExp(`^PostgreSQL at 127\\.0\\.0\\.1:${port}/presence did not answer: .*timeout`, 'i'),
      );
    } finally {
      silent.close();
    }
  });

  it('an open store whose server goes away rejects its calls and reads as not ready', async () => {
    const s = await node();
    await s.presence.write([user('ana')]);
    // End this node's server sessions, as a restart of PostgreSQL would.
    const other = await node();
    await other.pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid != pg_backend_pid() AND application_name = ''`,
    );
    // A call that meets a dropped client fails, the pool discards that client, and a later call
    // gets a new one: the store recovers by itself, within one call per pooled client.
    let recovered = false;
    for (let i = 0; i <= 3 && !recovered; i++) {
      recovered = await s.presence.getUser('ana').then(
        (u) => u !== null,
        () => false,
      );
    }
    expect(recovered).toBe(true);
    await s.close();
    await expect(s.presence.getUser('ana')).rejects.toThrow();
    expect(await s.ready()).toBe(false);
  });
});
