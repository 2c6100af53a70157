/**
 * @module store/redis
 * Redis for several nodes: the hot state (not wired into the engine yet) and the coordination
 * (locks, rate budgets, delivery memories, polling shares).
 */

export * from './client';
export * from './coordination';
export * from './hot-state';
