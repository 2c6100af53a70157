import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { FakeClock } from '../../src/core/clock';
import { MigrationError, isMigrated, migrate, openDb, readMigrations } from '../../src/store/db';
import { tmpDir } from '../helpers/engine';

describe('migration runner', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  function migrationsDir(name: string, files: Record<string, string>): string {
    const dir = join(tmp.dir, name);
    mkdirSync(dir);
    for (const [file, sql] of Object.entries(files)) writeFileSync(join(dir, file), sql);
    return dir;
  }

  it('applies every migration to a fresh database, then finds it up to date', () => {
    const db = openDb(join(tmp.dir, 'fresh.db'));
    const first = migrate(db);
    expect(first.applied).toEqual(readMigrations().map((m) => `${m.version}_${m.name}`));
    expect(first.applied.length).toBeGreaterThan(0);
    expect(isMigrated(db)).toBe(true);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all();
    expect(tables).toEqual(
      expect.arrayContaining(['users', 'accounts', 'observations', 'aggregates', 'transitions', 'overrides']),
    );
    const second = migrate(db);
    expect(second.applied).toEqual([]);
    expect(second.upToDate).toEqual(first.applied);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('applies only the pending ones, in order, recording a checksum and time', () => {
    const dir = migrationsDir('pending', { '0001_a.sql': 'CREATE TABLE a (x);' });
    const db = openDb(join(tmp.dir, 'pending.db'));
    const clock = new FakeClock(1234);
    expect(migrate(db, readMigrations(dir), clock).applied).toEqual(['0001_a']);
    writeFileSync(join(dir, '0002_b.sql'), 'CREATE TABLE b (y);');
    expect(migrate(db, readMigrations(dir), clock).applied).toEqual(['0002_b']);
    const rows = db
      .prepare('SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version')
      .all() as {
      version: string;
      checksum: string;
      applied_at: number;
    }[];
    expect(rows.map((r) => r.version)).toEqual(['0001', '0002']);
    expect(rows[0]?.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0]?.applied_at).toBe(1234);
    db.close();
  });

  it('refuses a database whose applied migration was edited', () => {
    const dir = migrationsDir('tampered', { '0001_a.sql': 'CREATE TABLE a (x);' });
    const db = openDb(join(tmp.dir, 'tampered.db'));
    migrate(db, readMigrations(dir));
    writeFileSync(join(dir, '0001_a.sql'), 'CREATE TABLE a (x, y);');
    writeFileSync(join(dir, '0002_b.sql'), 'CREATE TABLE b (y);');
    expect(() => migrate(db, readMigrations(dir))).toThrow(MigrationError);
    expect(() => migrate(db, readMigrations(dir))).toThrow(/0001_a was edited/);
    // Nothing after the refusal was applied.
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'b'").pluck().get()).toBe(0);
    db.close();
  });

  it('accepts a database that applied 0003 before its comment-only edit, and nothing else', () => {
    const db = openDb(join(tmp.dir, 'earlier-0003.db'));
    migrate(db);
    const setChecksum = (checksum: string): void => {
      db.prepare("UPDATE schema_migrations SET checksum = ? WHERE version = '0003'").run(checksum);
    };
    setChecksum('4dbce09eee02e2c61278d79d3eb23cebf7175d8f967e8208a1b54e01ad31be49');
    expect(migrate(db).applied).toEqual([]);
    setChecksum('0'.repeat(64));
    expect(() => migrate(db)).toThrow(/0003_webhooks was edited/);
    db.close();
  });

  it('refuses a database whose applied migration file is missing', () => {
    const dir = migrationsDir('missing', {
      '0001_a.sql': 'CREATE TABLE a (x);',
      '0002_b.sql': 'CREATE TABLE b (x);',
    });
    const db = openDb(join(tmp.dir, 'missing.db'));
    migrate(db, readMigrations(dir));
    expect(() => migrate(db, readMigrations(dir).slice(0, 1))).toThrow(
      /0002_b is applied to this database but its file is missing; the database is at a newer schema than this version knows \(up to 0001\)/,
    );
    db.close();
  });

  it('rolls a failing migration back whole', () => {
    const dir = migrationsDir('failing', { '0001_a.sql': 'CREATE TABLE a (x); CREATE TABLE oops (;' });
    const db = openDb(join(tmp.dir, 'failing.db'));
    expect(() => migrate(db, readMigrations(dir))).toThrow();
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'a'").pluck().get()).toBe(0);
    expect(db.prepare('SELECT count(*) FROM schema_migrations').pluck().get()).toBe(0);
    db.close();
  });
});
