/**
 * @module store/faults
 * Why the store cannot commit, said once: each failure SQLite can give a write maps to one stable
 * `reason` (in the 503 body's `details`, in `/readyz`, in the log), a message safe to show, and
 * the `Retry-After` a client gets with it. A lock held by someone else is worth waiting for a
 * little (the engine retries it on timers); the others are not.
 */

import { AppError } from '../core/errors';

export const STORE_FAULT_REASONS = [
  'database_locked',
  'disk_full',
  'read_only',
  'io_error',
  'database_closed',
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

/** SQLite's primary result code (extended codes share its prefix) → our reason. */
function reasonOf(error: unknown): StoreFaultReason {
  const code = sqliteCode(error);
  if (code !== null) {
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'database_locked';
    if (code === 'SQLITE_FULL') return 'disk_full';
    if (code.startsWith('SQLITE_READONLY')) return 'read_only';
    if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN')) return 'io_error';
    return 'store_error';
  }
  return closedConnection(error) ? 'database_closed' : 'store_error';
}

export function classifyStoreError(error: unknown, now: number): StoreFault {
  const reason = reasonOf(error);
  return { reason, ...FAULTS[reason], since: now };
}

/**
 * True for a failure of the store itself (locked, full, read-only, I/O, closed), as opposed to a
 * statement that is wrong (a constraint, a trigger): that one is a bug and stays one.
 */
export function isStoreFault(error: unknown): boolean {
  return (sqliteCode(error) !== null || closedConnection(error)) && reasonOf(error) !== 'store_error';
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
