/**
 * Store faults: PostgreSQL's connection failures classify like SQLite's store failures (503
 * `unavailable` with Retry-After, a stable reason), and a statement that is wrong stays a bug.
 */

import pg from 'pg';

import { classifyStoreError, isStoreFault, StoreUnavailableError } from '../../../src/store/faults';
import { PgUnavailableError, QUEUE_FULL_MESSAGE } from '../../../src/store/pg/pool';

/** A server error as node-postgres builds it from an ErrorResponse message. */
function serverError(code: string, message: string): pg.DatabaseError {
  const e = new pg.DatabaseError(message, message.length, 'error');
  e.severity = 'FATAL';
  e.code = code;
  return e;
}

/** A socket error as Node gives it. */
function socketError(code: string, syscall = 'connect'): NodeJS.ErrnoException {
  return Object.assign(new Error(`${syscall} ${code} 127.0.0.1:5432`), { code, syscall, errno: -1 });
}

describe('PostgreSQL store faults', () => {
  const unreachable: [string, unknown][] = [
    ['connection refused', socketError('ECONNREFUSED')],
    ['connection reset', socketError('ECONNRESET', 'read')],
    ['connect timed out', socketError('ETIMEDOUT')],
    ['broken pipe', socketError('EPIPE', 'write')],
    ['host unreachable', socketError('EHOSTUNREACH')],
    [
      'several addresses refused',
      new AggregateError([socketError('ECONNREFUSED'), socketError('ECONNREFUSED')], ''),
    ],
    ['57P01 admin shutdown', serverError('57P01', 'terminating connection due to administrator command')],
    ['57P02 crash shutdown', serverError('57P02', 'terminating connection because of crash')],
    ['57P03 cannot connect now', serverError('57P03', 'the database system is starting up')],
    ['08006 connection failure', serverError('08006', 'connection failure')],
    ['57014 statement timeout', serverError('57014', 'canceling statement due to statement timeout')],
    ['terminated unexpectedly', new Error('Connection terminated unexpectedly')],
    ['pool connect timeout', new Error('Connection terminated due to connection timeout')],
    ['pool checkout timeout', new Error('timeout exceeded when trying to connect')],
    ['client broken', new Error('Client has encountered a connection error and is not queryable')],
    ['unreachable at open', new PgUnavailableError('PostgreSQL at db:5432/presence did not answer')],
  ];

  it.each(unreachable)('%s is database_unreachable, refused at once with Retry-After', (_what, error) => {
    expect(isStoreFault(error)).toBe(true);
    const fault = classifyStoreError(error, 1234);
    expect(fault).toMatchObject({ reason: 'database_unreachable', transient: false, since: 1234 });
    expect(fault.retryAfterS).toBeGreaterThan(0);
    const refusal = new StoreUnavailableError(fault);
    expect(refusal.status).toBe(503);
    expect(refusal.code).toBe('unavailable');
    expect(refusal.headers).toEqual({ 'retry-after': String(fault.retryAfterS) });
    expect(refusal.details).toEqual([{ code: 'database_unreachable', message: fault.message }]);
  });

  it('names too many connections and a full waiting queue database_busy', () => {
    for (const error of [
      serverError('53300', 'sorry, too many clients already'),
      new Error(`${QUEUE_FULL_MESSAGE} (1000 already wait)`),
    ]) {
      expect(isStoreFault(error)).toBe(true);
      expect(classifyStoreError(error, 0).reason).toBe('database_busy');
    }
  });

  it('maps the server states SQLite also has to the same reasons', () => {
    expect(classifyStoreError(serverError('53100', 'could not extend file'), 0).reason).toBe('disk_full');
    expect(classifyStoreError(serverError('25006', 'read-only transaction'), 0).reason).toBe('read_only');
    expect(classifyStoreError(serverError('58030', 'could not write'), 0).reason).toBe('io_error');
    const locked = classifyStoreError(serverError('40P01', 'deadlock detected'), 0);
    expect(locked).toMatchObject({ reason: 'database_locked', transient: true });
    const ended = new Error('Cannot use a pool after calling end on the pool');
    expect(isStoreFault(ended)).toBe(true);
    expect(classifyStoreError(ended, 0).reason).toBe('database_closed');
  });

  it('leaves a wrong statement a bug, not a fault', () => {
    for (const error of [
      serverError('23505', 'duplicate key value violates unique constraint "users_pkey"'),
      serverError('23503', 'insert or update violates foreign key constraint'),
      serverError('42P01', 'relation "nope" does not exist'),
      new Error('a write was handed a transaction of another store or connection'),
      Object.assign(new Error('ENOENT'), { code: 'ENOENT', syscall: 'open' }),
      new TypeError('x is not a function'),
    ]) {
      expect(isStoreFault(error)).toBe(false);
      expect(classifyStoreError(error, 0).reason).toBe('store_error');
    }
  });

  it('keeps classifying SQLite as before', () => {
    const busy = Object.assign(new Error('database is locked'), { name: 'SqliteError', code: 'SQLITE_BUSY' });
    expect(isStoreFault(busy)).toBe(true);
    expect(classifyStoreError(busy, 0)).toMatchObject({ reason: 'database_locked', transient: true });
    const constraint = Object.assign(new Error('UNIQUE'), {
      name: 'SqliteError',
      code: 'SQLITE_CONSTRAINT_PRIMARYKEY',
    });
    expect(isStoreFault(constraint)).toBe(false);
  });
});
