/**
 * The shipped bin on PostgreSQL (PRESENCE_DATABASE_URL), as child processes, each test on a
 * database of its own: `presence migrate` and its report, a database that does not answer or is
 * at a newer schema, a bad URL (never printed); the store commands; and `presence serve`: keys,
 * presence and webhook endpoints kept across a restart, PostgreSQL cut off (a TCP proxy in
 * between) and back.
 */

import { randomBytes } from 'node:crypto';

import pg from 'pg';

import { freePort } from '../helpers/free-port';
import { createTestDatabase, pgUrl, type TestDatabase } from '../helpers/pg-database';
import { TcpProxy } from '../helpers/tcp-proxy';
import { cleanEnv, runBin, startServe, until, webhookReceiver, type ServeProcess } from './serve-process';

const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const d of databases.splice(0)) await d.drop();
});

async function database(): Promise<TestDatabase> {
  const d = await createTestDatabase();
  databases.push(d);
  return d;
}

describe('presence migrate on PostgreSQL', () => {
  it('migrates the database of PRESENCE_DATABASE_URL, naming it without credentials', async () => {
    const d = await database();
    // Trust authentication ignores the password; it must appear nowhere.
    const url = d.url.replace('postgres@', 'postgres:sekret-pw@');
    const env = cleanEnv({ PRESENCE_DATABASE_URL: url });
    const first = await runBin(['migrate'], env);
    expect(first.code).toBe(0);
    const lines = first.stdout.trim().split('\n');
    const where = `PostgreSQL 127.0.0.1:5432/${d.name}`;
    expect(lines[0]).toBe(`${where}: ${lines.length - 1} pending migration(s)`);
    expect(lines[1]).toBe('applied 0001_presence');
    expect(lines.slice(1).every((l) => /^applied \d{4}_[a-z0-9_]+$/.test(l))).toBe(true);
    const again = await runBin(['migrate'], env);
    expect(again.stdout.trim()).toBe(`${where}: up to date (${lines.length - 1} migrations applied before)`);
    expect(first.stdout + first.stderr + again.stdout + again.stderr).not.toContain('sekret-pw');
  });

  it('refuses a database at a newer schema, saying so in one line', async () => {
    const d = await database();
    const env = cleanEnv({ PRESENCE_DATABASE_URL: d.url });
    expect((await runBin(['migrate'], env)).code).toBe(0);
    const c = new pg.Client({ connectionString: d.url });
    await c.connect();
    await c.query("INSERT INTO schema_migrations VALUES ('9999', 'from_the_future', 'x', 0)");
    await c.end();
    const r = await runBin(['migrate'], env);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^error: database PostgreSQL 127\\.0\\.0\\.1:5432/${d.name}: migration 9999_from_the_future is applied to this database but its file is missing; the database is at a newer schema than this version knows`,
        ),
      ),
    ]);
  });

  it('a PostgreSQL that does not answer: one line naming where, never the password, exit 1', async () => {
    const port = await freePort();
    const r = await runBin(
      ['migrate'],
      cleanEnv({ PRESENCE_DATABASE_URL: `postgres://app:sekret-pw@127.0.0.1:${port}/presence` }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      `error: PostgreSQL at 127.0.0.1:${port}/presence did not answer: connect ECONNREFUSED 127.0.0.1:${port} (PRESENCE_DATABASE_URL)`,
    ]);
  });

  it('a URL that is not PostgreSQL is a configuration error naming the variable, not its value', async () => {
    const r = await runBin(
      ['migrate'],
      cleanEnv({ PRESENCE_DATABASE_URL: 'mysql://app:sekret-pw@db/presence' }),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('PRESENCE_DATABASE_URL: must be a PostgreSQL URL');
    expect(r.stderr).not.toContain('sekret-pw');
  });
});

describe('the store commands on PostgreSQL', () => {
  it('keys and get work on the database of PRESENCE_DATABASE_URL, not on PRESENCE_DB', async () => {
    const d = await database();
    const env = cleanEnv({ PRESENCE_DATABASE_URL: d.url, PRESENCE_DB: '/nonexistent/dir/never.db' });
    const created = await runBin(['keys', 'create', '--scopes', 'read', '--name', 'ci'], env);
    expect(created.code).toBe(0);
    const listed = await runBin(['keys', 'list'], env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/\bread\s+active\s+ci\b/);
    const got = await runBin(['get', 'eve'], env);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout)).toEqual({ presence: {}, unknown: ['eve'] });
    const c = new pg.Client({ connectionString: d.url });
    await c.connect();
    const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys');
    await c.end();
    expect(rows[0]!.n).toBe(1);
  });
});

describe('presence serve on PostgreSQL', () => {
  const running: ServeProcess[] = [];
  afterEach(async () => {
    for (const svc of running.splice(0)) await svc.stop();
  });

  /** `serve` (after `keys create`) on `url`, with `secret` sealing tokens and webhook secrets. */
  async function serve(url: string, secret: string): Promise<ServeProcess> {
    const svc = await startServe({
      env: { PRESENCE_DATABASE_URL: url, PRESENCE_SECRET_KEY: secret, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' },
    });
    running.push(svc);
    return svc;
  }

  const heartbeat = (svc: ServeProcess, device: string, status?: string) =>
    // Live for 10 minutes: the cut-off test must not see a device expire while it runs.
    svc.api('POST', '/v1/heartbeats', {
      user_id: 'eve',
      device_id: device,
      ttl_seconds: 600,
      ...(status && { status }),
    });

  it('keeps keys, presence and webhook endpoints in PostgreSQL across a restart', async () => {
    const d = await database();
    const secret = randomBytes(32).toString('base64');
    expect((await runBin(['migrate'], cleanEnv({ PRESENCE_DATABASE_URL: d.url }))).code).toBe(0);
    const first = await serve(d.url, secret);
    expect((await fetch(`${first.base}/readyz`)).status).toBe(200);
    const hooks = await webhookReceiver(first);
    try {
      expect((await heartbeat(first, 'laptop')).status).toBe(204);
      expect((await first.api('GET', '/v1/presence/eve')).body).toMatchObject({ status: 'online' });
      await hooks.presenceChanged('eve', (c) => c.status === 'online', 'eve online');

      expect(await first.stop()).toBe(0);
      const second = await serve(d.url, secret);
      // The first process's key still opens the second (it is in PostgreSQL, not in a file).
      const read = await fetch(`${second.base}/v1/presence/eve`, {
        headers: { authorization: `Bearer ${first.key}` },
      });
      expect(read.status).toBe(200);
      const eve = (await read.json()) as { status: string; version: number; platforms: any };
      expect(eve).toMatchObject({ status: 'online' });
      expect(Object.keys(eve.platforms.device.devices)).toEqual(['laptop']);
      // The endpoint (its sealed secret) came back too: a change after the restart is delivered.
      expect((await heartbeat(second, 'laptop', 'busy')).status).toBe(204);
      const busy = await hooks.presenceChanged(
        'eve',
        (c) => c.status === 'busy',
        'eve busy after the restart',
      );
      expect(busy.data.current.version).toBeGreaterThan(eve.version);
      const history = (await second.api('GET', '/v1/presence/eve/history')).body.transitions as unknown[];
      expect(history.length).toBeGreaterThanOrEqual(2);
      const c = new pg.Client({ connectionString: d.url });
      await c.connect();
      const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys');
      await c.end();
      expect(rows[0]!.n).toBe(2);
    } finally {
      await hooks.close();
    }
  });

  it('PostgreSQL cut off: writes 503 unavailable, /readyz names it, reads answer, then it all recovers', async () => {
    const d = await database();
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 5432 });
    try {
      const svc = await serve(pgUrl(d.name, `127.0.0.1:${proxy.port}`), randomBytes(32).toString('base64'));
      const hooks = await webhookReceiver(svc);
      try {
        expect((await heartbeat(svc, 'laptop')).status).toBe(204);
        await hooks.presenceChanged('eve', (c) => c.status === 'online', 'eve online');

        await proxy.cut();
        const started = performance.now();
        const refused = await heartbeat(svc, 'phone', 'busy');
        const tookMs = performance.now() - started;
        expect(refused.status).toBe(503);
        expect(refused.body.error).toMatchObject({
          code: 'unavailable',
          details: [{ code: 'database_unreachable' }],
        });
        // Refused within the pool's connect timeout (1.5 s), far from a client's timeout.
        expect(tookMs).toBeLessThan(15_000);
        const ready = await until(async () => {
          const r = await fetch(`${svc.base}/readyz`);
          return r.status === 503 ? ((await r.json()) as { reason: string }) : null;
        }, '/readyz to say the database is down');
        expect(ready).toMatchObject({ ready: false, reason: 'database_unreachable' });
        expect((await fetch(`${svc.base}/healthz`)).status).toBe(200);
        // What is in memory keeps answering: the last committed state, without the refused write.
        const read = await svc.api('GET', '/v1/presence/eve');
        expect(read.status).toBe(200);
        expect(read.body).toMatchObject({ status: 'online' });
        expect(Object.keys(read.body.platforms.device.devices)).toEqual(['laptop']);

        await proxy.restore();
        await until(async () => (await fetch(`${svc.base}/readyz`)).status === 200, '/readyz to recover');
        // The phone's busy is taken now; eve turns busy once the laptop says so too (a device
        // online keeps her online).
        expect((await heartbeat(svc, 'phone', 'busy')).status).toBe(204);
        expect((await heartbeat(svc, 'laptop', 'busy')).status).toBe(204);
        await hooks.presenceChanged('eve', (c) => c.status === 'busy', 'eve busy after the recovery');
        const after = await svc.api('GET', '/v1/presence/eve');
        expect(Object.keys(after.body.platforms.device.devices).sort()).toEqual(['laptop', 'phone']);
        // Nothing acknowledged was lost, and the refused write was never applied: one online,
        // one busy event, in order.
        const statuses = hooks
          .events()
          .filter((e) => e.type === 'presence.changed')
          .map((e) => e.data.current.status as string);
        expect(statuses).toEqual(['online', 'busy']);
      } finally {
        await hooks.close();
      }
    } finally {
      await proxy.close();
    }
  });
});
