/**
 * @module test/helpers/pg-server
 * A PostgreSQL server of the test's own (initdb into a temporary folder, a free loopback port,
 * its unix socket in that folder), for tests that stop and start the database under a running
 * service: `stop()` is `pg_ctl stop` (fast: clients cut off at once; immediate: a crash, recovered
 * from the WAL at the next start), `start()` brings it back on the same port with its data. The
 * machine's shared PostgreSQL at 5432 is never touched. fsync is off: the test kills the server,
 * not the machine, so the OS still holds every write it was handed, and a commit is as final for
 * the clients as with fsync on. synchronous_commit stays on: off, a commit is answered before its
 * WAL leaves the server's memory, and an immediate stop loses acknowledged commits (this test
 * suite caught exactly that when it was off).
 *
 * PostgreSQL refuses to run as root: as root (CI, the sessions) every binary runs as the
 * `postgres` user through `runuser`, and the folder is handed to that user.
 */

import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import pg from 'pg';

import { freePort } from './free-port';

/** The newest installed PostgreSQL's binaries (Debian puts each major version apart). */
function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error(`no PostgreSQL binaries (initdb) under ${root}`);
  return join(root, versions[0]!, 'bin');
}

export class PgServer {
  private running = false;

  private constructor(
    private readonly dir: string,
    private readonly bin: string,
    readonly port: number,
  ) {}

  /** Creates the cluster (a `presence` database in it) and starts it. */
  static async start(): Promise<PgServer> {
    const dir = mkdtempSync(join(tmpdir(), 'presence-pg-'));
    const server = new PgServer(dir, binDir(), await freePort());
    try {
      if (process.getuid?.() === 0) {
        const { uid, gid } = await postgresIds();
        chownSync(dir, uid, gid);
      }
      await server.run('initdb', [
        '-D',
        server.data,
        '-A',
        'trust',
        '-U',
        'postgres',
        '-E',
        'UTF8',
        '--no-locale',
        '--no-sync',
      ]);
      await server.start();
      const admin = new pg.Client({ connectionString: server.urlOf('postgres') });
      await admin.connect();
      try {
        await admin.query('CREATE DATABASE presence');
      } finally {
        await admin.end();
      }
      return server;
    } catch (e) {
      await server.destroy().catch(() => undefined);
      throw e;
    }
  }

  private get data(): string {
    return join(this.dir, 'data');
  }

  /** The `presence` database's URL (trust auth, user postgres). */
  get url(): string {
    return this.urlOf('presence');
  }

  private urlOf(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Runs one of the server's binaries (as `postgres` when we are root); rejects with its output. */
  private async run(name: string, args: readonly string[]): Promise<void> {
    const path = join(this.bin, name);
    const [file, argv] =
      process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, args];
    try {
      await promisify(execFile)(file, argv, { cwd: this.dir, timeout: 120_000 });
    } catch (e) {
      const err = e as { message: string; stdout?: string; stderr?: string };
      throw new Error(`${name} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
  }

  /** Starts the server on its port (its data as it was left) and waits until it takes connections. */
  async start(): Promise<void> {
    if (this.running) return;
    const options = [
      `-p ${this.port}`,
      `-k ${this.dir}`,
      '-c listen_addresses=127.0.0.1',
      '-c fsync=off',
      '-c full_page_writes=off',
      '-c max_connections=100',
    ].join(' ');
    // -w: pg_ctl returns once the server accepts connections (or fails after -t seconds).
    await this.run('pg_ctl', [
      '-D',
      this.data,
      '-l',
      join(this.dir, 'log'),
      '-w',
      '-t',
      '120',
      '-o',
      options,
      'start',
    ]);
    this.running = true;
  }

  /** Stops the server and waits until it is gone: `fast` cuts clients off, `immediate` is a crash. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!this.running) return;
    await this.run('pg_ctl', ['-D', this.data, '-m', mode, '-w', '-t', '120', 'stop']);
    this.running = false;
  }

  /** Stops it and removes its folder. */
  async destroy(): Promise<void> {
    try {
      if (existsSync(join(this.data, 'postmaster.pid'))) {
        this.running = true;
        await this.stop('immediate');
      }
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** The `postgres` user's ids, from the system's user database. */
async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const id = (flag: string) =>
    promisify(execFile)('id', [flag, 'postgres']).then(({ stdout }) => Number(stdout.trim()));
  return { uid: await id('-u'), gid: await id('-g') };
}
