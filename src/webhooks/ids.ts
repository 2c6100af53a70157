/**
 * @module webhooks/ids
 * Identifiers for webhook messages and endpoints: a prefix and a ULID-like body (48 bits of
 * milliseconds, then 80 random bits, Crockford base32). Sortable by creation time, which makes
 * logs and `webhook-id`s easy to read, and unguessable enough that an id reveals nothing.
 */

import { randomFillSync } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const RANDOM_BYTES = 10;
// A pool, so that the hot path (one id per change) does not call into OpenSSL every time.
const pool = Buffer.alloc(RANDOM_BYTES * 256);
let poolOffset = pool.length;

function encodeTime(ms: number): string {
  let out = '';
  let t = Math.max(0, Math.floor(ms));
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD[t % 32]! + out;
    t = Math.floor(t / 32);
  }
  return out;
}

function encodeRandom(): string {
  if (poolOffset + RANDOM_BYTES > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  // 80 bits = 16 groups of 5 bits, read from the pool two bytes at a time.
  let out = '';
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < RANDOM_BYTES; i++) {
    acc = (acc << 8) | pool[poolOffset + i]!;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += CROCKFORD[(acc >> bits) & 31]!;
    }
    acc &= (1 << bits) - 1;
  }
  poolOffset += RANDOM_BYTES;
  return out;
}

/** A 26-character ULID-like id for the moment `ms`. */
export function ulid(ms: number): string {
  return encodeTime(ms) + encodeRandom();
}

/** The `webhook-id` of one event: the same for every endpoint, every retry and every replay. */
export const newMessageId = (ms: number): string => `msg_${ulid(ms)}`;

export const newEndpointId = (ms: number): string => `ep_${ulid(ms)}`;
