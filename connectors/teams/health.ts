/**
 * @module connectors/teams/health
 * The Teams connector's health bookkeeping. Polling and subscriptions fail separately: a polling
 * problem stands until the next successful poll, a subscription problem until the next sync or
 * renewal that goes through, and either makes the connector at least `degraded`.
 */

import type { ConnectorHealth } from '../../src/core/connector';

export class TeamsHealth {
  private problem: { level: 'down' | 'degraded'; message: string } | null = null;
  private subProblem: string | null = null;
  private lastSuccessAt: number | null = null;
  private lastError: string | null = null;

  pollSucceeded(at: number): void {
    this.problem = null;
    this.lastSuccessAt = at;
  }

  pollFailed(level: 'down' | 'degraded', message: string): void {
    this.problem = { level, message };
    this.lastError = message;
  }

  /** A failure that leaves the state as it is; it shows as lastError until another replaces it. */
  error(message: string): void {
    this.lastError = message;
  }

  setSubProblem(problem: string | null): void {
    this.subProblem = problem;
    if (problem !== null) this.lastError = problem;
  }

  report(nextPollAt: number | null): ConnectorHealth {
    const state =
      this.problem?.level === 'down'
        ? 'down'
        : this.problem !== null || this.subProblem !== null
          ? 'degraded'
          : 'ok';
    return {
      state,
      lastSuccessAt: this.lastSuccessAt,
      lastError: this.problem?.message ?? this.subProblem ?? this.lastError,
      nextPollAt,
    };
  }
}
