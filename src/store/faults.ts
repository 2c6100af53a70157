/**
 * @module store/faults
 * Why the store cannot commit, said once: each failure SQLite or PostgreSQL can give a write maps
 * to one stable `reason` (in the 503 body's `details`, in `/readyz`, in the log), a message safe to
 * show, and the `Retry-After` a client gets with it. A lock held by someone else is worth waiting
 * for a little (the engine retries it on timers); the others are not.
 *
 * Errors are recognised by shape, never by `instanceof` (see `sqliteCode`): better-sqlite3's
 * `SqliteError` (name and SQLITE_ code), node-postgres's server errors (a five-character SQLSTATE
 * `code` with a `severity`), Node's socket errors (an errno `code` with a `syscall`), and the few
 * messages node-postgres and its pool give a connection that failed on the client side.
 */

import { AppError } from '../core/errors';

export const STORE_FAULT_REASONS = [
  'database_locked',
  'disk_full',
  'read_only',
  'io_error',
  'database_closed',
  'database_unreachable',
  'database_busy',
  'change_log_unavailable',
  'version_conflict',
  'store_error',
] as const;
export type StoreFaultReason = (typeof STORE_FAULT_REASONS)[number];

export interface StoreFault {
  readonly reason: StoreFaultReason;
  /** Safe to show: names the cause, never a path or a value. */
  readonly message: string;
  /** Worth retrying in a moment without giving up the change (another writer holds the lock). */
  readonly transient: boolean;
  /** Seconds a client should wait before trying again. */
  readonly retryAfterS: number;
  /** When this fault was first seen (the store's clock). */
  readonly since: number;
}

const FAULTS: Readonly<Record<StoreFaultReason, Omit<StoreFault, 'reason' | 'since'>>> = {
  database_locked: {
    message: 'the database is locked by another process',
    transient: true,
    retryAfterS: 2,
  },
  disk_full: { message: 'the disk holding the database is full', transient: false, retryAfterS: 30 },
  read_only: { message: 'the database is read-only', transient: false, retryAfterS: 30 },
  io_error: { message: 'the database could not be written (I/O error)', transient: false, retryAfterS: 10 },
  database_closed: { message: 'the database is closed', transient: false, retryAfterS: 5 },
  // Not retried by the engine: a database that does not answer is refused at once (503), and
  // the next write or readiness probe tries a fresh connection.
  database_unreachable: {
    message: 'the database does not answer (connection refused, lost or timed out)',
    transient: false,
    retryAfterS: 5,
  },
  database_busy: {
    message: 'the database has no connection free (too many connections)',
    transient: false,
    retryAfterS: 2,
  },
  // Several nodes: a change is committed only while the shared change log (Redis) can take it.
  change_log_unavailable: {
    message: 'the shared change log (Redis) is unavailable',
    transient: false,
    retryAfterS: 2,
  },
  // Several nodes: the user's change met other nodes' changes to that user at every try
  // (aggregator/group-commit.ts). The store itself is fine.
  version_conflict: {
    message: "the change kept meeting other nodes' changes to the same user",
    transient: false,
    retryAfterS: 1,
  },
  store_error: { message: 'the database could not commit the change', transient: false, retryAfterS: 5 },
};

/**
 * The SQLite result code of an error better-sqlite3 threw, or null. Recognised by shape, never
 * by `instanceof`: the native addon keeps the first `SqliteError` class it was handed, and a
 * second copy of the module (a test runner's fresh module registry and realm) would not match.
 */
function sqliteCode(error: unknown): string | null {
  if (typeof error !== 'object' || error === null) return null;
  const { name, code } = error as { name?: unknown; code?: unknown };
  return name === 'SqliteError' && typeof code === 'string' && code.startsWith('SQLITE_') ? code : null;
}

/** better-sqlite3's TypeError for a statement run on a closed connection. */
function closedConnection(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { message } = error as { message?: unknown };
  return typeof message === 'string' && /database connection is not open/.test(message);
}

/** A PostgreSQL server error's SQLSTATE (node-postgres's `DatabaseError`), or null. */
function sqlState(error: unknown): string | null {
  if (typeof error !== 'object' || error === null) return null;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof severity === 'string' ? code : null;
}

/** SQLSTATEs that are the server's state, not the statement's (PostgreSQL, Appendix A). */
function pgReason(state: string): StoreFaultReason {
  // Class 08: connection exception; 57P01-57P05: admin/crash shutdown, cannot connect now,
  // database dropped, idle session timeout; 57014: a statement cancelled (statement_timeout).
  if (state.startsWith('08') || /^57P0[1-5]$/.test(state) || state === '57014') return 'database_unreachable';
  if (state === '53300') return 'database_busy'; // too_many_connections
  if (state === '53100') return 'disk_full';
  if (state === '25006') return 'read_only'; // read_only_sql_transaction (a standby)
  if (state === '58030') return 'io_error';
  if (state === '55P03' || state === '40P01' || state === '40001') return 'database_locked';
  return 'store_error';
}

/** Node's errors for a socket that could not connect or was lost. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * node-postgres's and pg-pool's own errors for a connection that failed, timed out or was
 * closed under a query (lib/client.js, pg-pool/index.js), and the one for a full pool queue
 * (store/pg/pool.ts).
 */
const PG_CONNECTION_MESSAGES =
  /^(Connection terminated( unexpectedly| due to connection timeout)?|timeout expired|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error and is not queryable|Client was closed and is not queryable)$/;
const PG_ENDED = /^Cannot use a pool after calling end on the pool$/;
const PG_QUEUE_FULL = /^too many statements waiting for a PostgreSQL connection/;

function clientSideReason(error: unknown): StoreFaultReason | null {
  if (typeof error !== 'object' || error === null) return null;
  const { code, syscall, message, name } = error as {
    code?: unknown;
    syscall?: unknown;
    message?: unknown;
    name?: unknown;
  };
  if (typeof code === 'string' && typeof syscall === 'string' && SOCKET_CODES.has(code))
    return 'database_unreachable';
  if (name === 'PgUnavailableError') return 'database_unreachable';
  if (typeof message !== 'string') return null;
  if (PG_CONNECTION_MESSAGES.test(message)) return 'database_unreachable';
  if (PG_QUEUE_FULL.test(message)) return 'database_busy';
  if (PG_ENDED.test(message)) return 'database_closed';
  return null;
}

/** The cluster's refusal to commit while Redis is down (cluster/appender.ts), by name. */
function changeLogDown(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { name?: unknown }).name === 'ChangeLogUnavailableError'
  );
}

/** The group commit's refusal of a change that stayed stale (aggregator/group-commit.ts), by name. */
function versionConflict(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { name?: unknown }).name === 'VersionConflictError'
  );
}

/** The reason of an error either store gave, or null for one that is not the store's. */
function knownReason(error: unknown): StoreFaultReason | null {
  if (changeLogDown(error)) return 'change_log_unavailable';
  if (versionConflict(error)) return 'version_conflict';
  const code = sqliteCode(error);
  if (code !== null) {
    // SQLite's primary result code (extended codes share its prefix).
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'database_locked';
    if (code === 'SQLITE_FULL') return 'disk_full';
    if (code.startsWith('SQLITE_READONLY')) return 'read_only';
    if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN')) return 'io_error';
    return 'store_error';
  }
  if (closedConnection(error)) return 'database_closed';
  const state = sqlState(error);
  if (state !== null) return pgReason(state);
  // An AggregateError (Node's happy-eyeballs connect to several addresses) fails for its first.
  if (error instanceof AggregateError && error.errors.length > 0) return knownReason(error.errors[0]);
  return clientSideReason(error);
}

function reasonOf(error: unknown): StoreFaultReason {
  return knownReason(error) ?? 'store_error';
}

export function classifyStoreError(error: unknown, now: number): StoreFault {
  const reason = reasonOf(error);
  return { reason, ...FAULTS[reason], since: now };
}

/**
 * True for a failure of the store itself (locked, full, read-only, I/O, closed, unreachable), as
 * opposed to a statement that is wrong (a constraint, a trigger): that one is a bug and stays one.
 */
export function isStoreFault(error: unknown): boolean {
  const reason = knownReason(error);
  return reason !== null && reason !== 'store_error';
}

/**
 * True for a failure that says the store cannot be reached right now (PostgreSQL refused, lost
 * or timed out the connection, or has none free), not that a value is missing or wrong: what a
 * cache of store values may ride out (core/recheck-cache.ts).
 */
export function isUnreachable(error: unknown): boolean {
  const reason = knownReason(error);
  return reason === 'database_unreachable' || reason === 'database_busy';
}

/** What a write gets while the store cannot commit it: 503 `unavailable`, with `Retry-After`. */
export class StoreUnavailableError extends AppError {
  constructor(readonly fault: StoreFault) {
    super(
      'unavailable',
      `${fault.message}; the change was not saved, try again later`,
      [{ code: fault.reason, message: fault.message }],
      { 'retry-after': String(fault.retryAfterS) },
    );
    this.name = 'StoreUnavailableError';
  }
}
