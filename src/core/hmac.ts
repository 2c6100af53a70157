/**
 * @module core/hmac
 * The HMAC-SHA256 checks platforms sign their pushes with (Zoom, WhatsApp; Slack uses bolt's),
 * compared in constant time.
 */

import { createHmac, timingSafeEqual } from 'node:crypto';

export function hmacHex(secret: string, message: string | Buffer): string {
  return createHmac('sha256', secret).update(message).digest('hex');
}

/** Constant-time equality of two strings of hex (or any text); false when lengths differ. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
