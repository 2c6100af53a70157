import type { StoreTx } from '../../src/core/changes';
import type {
  AccountRecord,
  LinkResult,
  LoadedUser,
  AsyncPresenceStore,
  TransitionRecord,
  UserRecord,
  WriteOp,
} from '../../src/core/ports';

/** A SQLite-shaped failure, as better-sqlite3 throws it. */
export const sqliteError = (code: string, message = code): Error =>
  Object.assign(new Error(message), { name: 'SqliteError', code });

/**
 * An asynchronous PresenceStore in memory for unit tests of the engine's parts: it records each
 * transaction (its ops, whether a stage ran) and rejects with `failNext` errors first, one per
 * write. A stage is awaited before the write counts, as a real store would before its commit.
 */
export class MemoryStore implements AsyncPresenceStore {
  readonly transactions: { ops: readonly WriteOp[]; staged: boolean }[] = [];
  readonly failNext: Error[] = [];
  readonly tx: StoreTx = { store: 'memory' };
  probes = 0;

  /** Users the next writes report stale, one set per write (as PostgreSQL would). */
  readonly staleNext: ReadonlySet<string>[] = [];

  async write(
    ops: readonly WriteOp[],
    stage?: (tx: StoreTx, stale?: ReadonlySet<string>) => void | Promise<void>,
  ): Promise<ReadonlySet<string> | void> {
    const error = this.failNext.shift();
    if (error !== undefined) throw error;
    const stale = this.staleNext.shift();
    // Without a stage the write lands at once, as a SQLite write does behind the async face.
    if (stage !== undefined) await stage(this.tx, stale);
    this.transactions.push({ ops: [...ops], staged: stage !== undefined });
    return stale;
  }

  get ops(): WriteOp[] {
    return this.transactions.flatMap((t) => t.ops);
  }

  loadAll(): Promise<LoadedUser[]> {
    return Promise.resolve([]);
  }
  loadUsers(): Promise<LoadedUser[]> {
    return Promise.resolve([]);
  }
  history(): Promise<TransitionRecord[]> {
    return Promise.resolve([]);
  }
  getUser(): Promise<UserRecord | null> {
    return Promise.resolve(null);
  }
  accountsOf(): Promise<AccountRecord[]> {
    return Promise.resolve([]);
  }
  linkAccount(): Promise<LinkResult> {
    return Promise.resolve({ linked: true });
  }
  unlinkAccount(): Promise<boolean> {
    return Promise.resolve(false);
  }
  deleteUser(): Promise<boolean> {
    return Promise.resolve(false);
  }
  probe(): Promise<void> {
    this.probes += 1;
    const error = this.failNext.shift();
    return error === undefined ? Promise.resolve() : Promise.reject(error);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
