/**
 * @module core/result
 * A small Result type for connector and store code, where failure is an expected outcome and not
 * an exception (HTTP code throws `AppError` instead).
 */

export type Result<T, E> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });
