/**
 * The shipped bin on PostgreSQL (PRESENCE_DATABASE_URL), as child processes, each test on a
 * database of its own: `presence migrate` and its report, a database that does not answer or is
 * at a newer schema, a bad URL (never printed); and the commands that do not run on PostgreSQL
 * yet refusing the URL.
 */

import { randomBytes } from 'node:crypto';

import pg from 'pg';

import { freePort } from '../helpers/free-port';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-database';
import { cleanEnv, runBin } from './serve-process';

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

describe('commands not on PostgreSQL yet', () => {
  it('serve and the store commands refuse PRESENCE_DATABASE_URL instead of quietly using PRESENCE_DB', async () => {
    const d = await database();
    const env = cleanEnv({
      PRESENCE_DATABASE_URL: d.url,
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
      PORT: '0',
    });
    for (const [args, what] of [
      [['serve'], '`presence serve`'],
      [['keys', 'create', '--scopes', 'read'], 'this command'],
      [['get', 'eve'], 'this command'],
    ] as const) {
      const r = await runBin(args, env);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `PRESENCE_DATABASE_URL: ${what} does not run on PostgreSQL yet (only \`presence migrate\` does)`,
      );
    }
  });
});
