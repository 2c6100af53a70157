/**
 * @module stream/position
 * Stream positions, `<epoch>:<offset>`. The offset rises by one for every committed change; the
 * epoch names the change log the offsets belong to. The embedded log lives in memory, so a new
 * process is a new epoch: positions from before a restart are answered with a fresh snapshot.
 */

import { randomBytes } from 'node:crypto';

export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

const POSITION = /^([A-Za-z0-9_-]{1,64}):(0|[1-9][0-9]{0,15})$/;

/** A fresh epoch: random, so two processes (or two starts of one) never share one. */
export function newEpoch(): string {
  return randomBytes(6).toString('hex');
}

export function formatPosition(epoch: string, offset: number): string {
  return `${epoch}:${offset}`;
}

/** The position a client sent, or null when it is not one (a miss, answered with a snapshot). */
export function parsePosition(text: string): Position | null {
  const m = POSITION.exec(text);
  if (m === null) return null;
  const offset = Number(m[2]);
  return Number.isSafeInteger(offset) ? { epoch: m[1]!, offset } : null;
}
