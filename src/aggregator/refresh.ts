/**
 * @module aggregator/refresh
 * Refresh persistence. A report whose content is unchanged only moves times in memory (no disk
 * write); the users refreshed so far are remembered here, and their times (observed_at,
 * expires_at, last_active_at) are written coarsely, every `refreshPersistMs`, in small
 * transactions.
 */

import type { PresenceStore, WriteOp } from '../core/ports';
import type { GroupCommit } from './group-commit';
import type { UserState } from './user-state';

export class RefreshPersister {
  private readonly dirty = new Set<UserState>();

  constructor(
    private readonly store: PresenceStore,
    private readonly commit: GroupCommit,
  ) {}

  /** Remembers that the user's times moved in memory. */
  mark(u: UserState): void {
    if (u.refreshDirty) return;
    u.refreshDirty = true;
    this.dirty.add(u);
  }

  /** Forgets a user that is gone. */
  forget(u: UserState): void {
    this.dirty.delete(u);
  }

  /**
   * Writes refreshed times of the users refreshed since the last run, a chunk per transaction,
   * yielding between chunks. Resolves to the number of users written.
   */
  async persist(chunk = 250): Promise<number> {
    let written = 0;
    while (this.dirty.size > 0) {
      // Changes first, then times. While the store fails, the times wait in memory for a later
      // run: they were acknowledged as refreshes, which never waited for a commit.
      if (this.commit.retrying || this.commit.attempt() !== null) return written;
      const ops: WriteOp[] = [];
      const users: UserState[] = [];
      for (const u of this.dirty) {
        this.dirty.delete(u);
        u.refreshDirty = false;
        if (u.deleted) continue;
        ops.push({
          op: 'refresh',
          userId: u.userId,
          observations: u.observations,
          lastActiveAt: u.lastActiveAt,
        });
        users.push(u);
        if (ops.length >= chunk) break;
      }
      try {
        this.store.write(ops);
        this.commit.healthy();
      } catch (error) {
        this.commit.noteFault(error);
        for (const u of users) this.mark(u);
        return written;
      }
      written += ops.length;
      if (this.dirty.size > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return written;
  }
}
