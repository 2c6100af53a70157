/**
 * @module test/helpers/pg-database
 * A database of its own on the local PostgreSQL (127.0.0.1:5432, trust auth, user postgres), for a
 * test file or a describe block: `presence_t_<random>`, dropped (connections forced off) by `drop`.
 */

import { randomBytes } from 'node:crypto';

import pg from 'pg';

export const PG_HOST = '127.0.0.1:5432';
export const pgUrl = (database: string, host = PG_HOST): string => `postgres://postgres@${host}/${database}`;

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

/** Creates a database of its own on the local PostgreSQL; `drop` removes it. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `presence_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgUrl('postgres') });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: pgUrl(name),
    drop: async () => {
      const c = new pg.Client({ connectionString: pgUrl('postgres') });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
