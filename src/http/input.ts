/**
 * @module http/input
 * Checks every request string must pass whatever field it is in, done once for all routes: text
 * that is valid Unicode and holds no NUL, JSON bodies that are UTF-8. A lone UTF-16 surrogate
 * cannot be stored as UTF-8 (SQLite would keep U+FFFD instead, so the stored value would not be
 * the one acknowledged), and a NUL cuts C strings short in logs and other programs.
 */

import { isUtf8 } from 'node:buffer';

import { AppError, type ErrorDetail } from '../core/errors';

/**
 * The router's limit on one path segment: long enough for any valid id (external ids go up to
 * 256), so that a long but plausible one still gets a clear 400 from validation; past it, 414.
 */
export const MAX_PARAM_LENGTH = 300;

export interface BadString {
  readonly path: readonly (string | number)[];
  readonly reason: 'lone_surrogate' | 'nul';
}

// ES2024's String.prototype.isWellFormed (Node 20 has it; the project's TypeScript lib is ES2023).
interface WellFormed {
  isWellFormed(): boolean;
}

function badText(s: string): BadString['reason'] | null {
  if (!(s as string & WellFormed).isWellFormed()) return 'lone_surrogate';
  if (s.includes('\u0000')) return 'nul';
  return null;
}

/**
 * The first string (an object key included) in a parsed body, query or set of path parameters
 * that is not valid Unicode text. Iterative, so a deeply nested body cannot overflow the stack.
 */
export function findBadString(value: unknown): BadString | null {
  // Nearly every request is clean: one pass without paths says so, and only a bad one is walked
  // again to say where (a 1,000-id batch then builds no path arrays at all).
  return allClean(value) ? null : locate(value);
}

function allClean(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (badText(v) !== null) return false;
    } else if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
    } else if (typeof v === 'object' && v !== null) {
      for (const key of Object.keys(v)) {
        if (badText(key) !== null) return false;
        stack.push((v as Record<string, unknown>)[key]);
      }
    }
  }
  return true;
}

function locate(value: unknown): BadString | null {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value, path: [] }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const v = item.value;
    if (typeof v === 'string') {
      const reason = badText(v);
      if (reason !== null) return { path: item.path, reason };
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], path: [...item.path, i] });
    } else if (typeof v === 'object' && v !== null) {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i]!;
        const reason = badText(key);
        if (reason !== null) return { path: [...item.path, key], reason };
        stack.push({ value: (v as Record<string, unknown>)[key], path: [...item.path, key] });
      }
    }
  }
  return null;
}

const REASON_TEXT: Record<BadString['reason'], string> = {
  lone_surrogate: 'not valid Unicode (a lone UTF-16 surrogate)',
  nul: 'contains a NUL character',
};

/** The 400 for a bad string, in the shape of a validation error of that part of the request. */
export function badStringError(part: string, bad: BadString): AppError {
  // A key's path names the key itself; printing it as it is would echo the bad text.
  const path = [part, ...bad.path.map((p) => (typeof p === 'string' && badText(p) !== null ? '?' : p))];
  const field = path.slice(1).join('.') || part;
  const message = REASON_TEXT[bad.reason];
  const detail: ErrorDetail = { code: bad.reason, message, path };
  return new AppError('invalid_request', `invalid ${field}: ${message}`, [detail]);
}

/** The 400 for a query string part that is not percent-encoded UTF-8. */
export function badQueryError(): AppError {
  const message = 'the query string is not validly percent-encoded UTF-8';
  return new AppError('invalid_request', message, [{ code: 'bad_encoding', message, path: ['querystring'] }]);
}

/** `charset=` of a content type, lower-cased and unquoted; undefined when there is none. */
export function charsetOf(contentType: string | undefined): string | undefined {
  const match = /;\s*charset\s*=\s*("?)([^";\s]*)\1/i.exec(contentType ?? '');
  return match?.[2]?.toLowerCase();
}

/**
 * JSON is UTF-8 (RFC 8259 §8.1: "JSON text exchanged between systems that are not part of a closed
 * ecosystem MUST be encoded using UTF-8"), so a body declared in another charset is refused with
 * 415 rather than decoded wrongly; bytes that are not UTF-8 are a 400.
 */
export function checkJsonBytes(contentType: string | undefined, body: Buffer): AppError | null {
  const charset = charsetOf(contentType);
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    return new AppError(
      'unsupported_media_type',
      `JSON bodies are UTF-8; charset=${charset.slice(0, 40)} is not accepted`,
      [{ code: 'charset', message: 'send charset=utf-8 or no charset', path: ['headers', 'content-type'] }],
    );
  }
  if (!isUtf8(body)) {
    return new AppError('invalid_request', 'the body is not valid UTF-8', [
      { code: 'not_utf8', message: 'the body is not valid UTF-8', path: ['body'] },
    ]);
  }
  return null;
}
