import type { StoreTx } from '../../src/core/changes';
import type {
  AccountRecord,
  LinkResult,
  LoadedUser,
  PresenceStore,
  TransitionRecord,
  UserRecord,
  WriteOp,
} from '../../src/core/ports';

/** A SQLite-shaped failure, as better-sqlite3 throws it. */
export const sqliteError = (code: string, message = code): Error =>
  Object.assign(new Error(message), { name: 'SqliteError', code });

/**
 * A PresenceStore in memory for unit tests of the engine's parts: it records each transaction
 * (its ops, whether a stage ran) and throws `failNext` errors first, one per write.
 */
export class MemoryStore implements PresenceStore {
  readonly transactions: { ops: readonly WriteOp[]; staged: boolean }[] = [];
  readonly failNext: Error[] = [];
  readonly tx: StoreTx = { store: 'memory' };
  probes = 0;

  write(ops: readonly WriteOp[], stage?: (tx: StoreTx) => void): void {
    const error = this.failNext.shift();
    if (error !== undefined) throw error;
    stage?.(this.tx);
    this.transactions.push({ ops: [...ops], staged: stage !== undefined });
  }

  get ops(): WriteOp[] {
    return this.transactions.flatMap((t) => t.ops);
  }

  loadAll(): LoadedUser[] {
    return [];
  }
  history(): TransitionRecord[] {
    return [];
  }
  getUser(): UserRecord | null {
    return null;
  }
  accountsOf(): AccountRecord[] {
    return [];
  }
  linkAccount(): LinkResult {
    return { linked: true };
  }
  unlinkAccount(): boolean {
    return false;
  }
  deleteUser(): boolean {
    return false;
  }
  probe(): void {
    this.probes += 1;
    const error = this.failNext.shift();
    if (error !== undefined) throw error;
  }
  close(): void {}
}
