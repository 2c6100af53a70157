/**
 * @module core/errors
 * The one error catalogue (docs/api.md, Errors). Every failure a client sees carries one of these codes
 * and the HTTP status that `codeToStatus` gives it.
 */

export const ERROR_CODES = [
  'invalid_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'conflict',
  'rate_limited',
  'payload_too_large',
  'unsupported_media_type',
  'platform_error',
  'unavailable',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export function codeToStatus(code: ErrorCode): number {
  switch (code) {
    case 'invalid_request':
      return 400;
    case 'unauthorized':
      return 401;
    case 'forbidden':
      return 403;
    case 'not_found':
      return 404;
    case 'conflict':
      return 409;
    case 'payload_too_large':
      return 413;
    case 'unsupported_media_type':
      return 415;
    case 'rate_limited':
      return 429;
    case 'platform_error':
      return 502;
    case 'unavailable':
      return 503;
    case 'internal':
      return 500;
  }
}

export interface ErrorDetail {
  readonly code: string;
  readonly message: string;
  readonly path?: readonly (string | number)[];
}

/** An error meant for a client: its message is safe to show and never holds a secret. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: readonly ErrorDetail[] = [],
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }

  get status(): number {
    return codeToStatus(this.code);
  }
}
