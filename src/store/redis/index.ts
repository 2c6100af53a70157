/**
 * @module store/redis
 * The Redis hot state for several nodes (not wired into the engine yet).
 */

export * from './client';
export * from './hot-state';
