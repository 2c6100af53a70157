/**
 * @module aggregator/users
 * User orchestration across layers: what forgetting a user takes beyond the engine. Their OAuth
 * connections are revoked at the platforms first (while the tokens still exist), then the engine
 * deletes the user with everything stored about them. Routes call this, not the engine.
 */

import type { PresenceEngine } from './engine';

export interface UserServiceDeps {
  readonly engine: Pick<PresenceEngine, 'hasUser' | 'deleteUser'>;
  /** Revokes the user's OAuth connections at the platforms, when the connection layer is wired. */
  readonly revokeConnections?: (userId: string) => Promise<void>;
}

export class UserService {
  constructor(private readonly deps: UserServiceDeps) {}

  /** Forgets the user; false for an unknown one (nothing is revoked then). */
  async deleteUser(userId: string): Promise<boolean> {
    const { engine, revokeConnections } = this.deps;
    if (!engine.hasUser(userId)) return false;
    await revokeConnections?.(userId);
    return engine.deleteUser(userId);
  }
}
