/**
 * @module dashboard/api
 * The REST calls of the dashboard, with the signed-in key. The key lives in this tab's
 * sessionStorage only: it is gone when the tab closes, and no other tab or site sees it.
 */

const STORAGE_KEY = 'presence.dashboard.key';

export function storedKey(): string | null {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function storeKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(STORAGE_KEY);
  else sessionStorage.setItem(STORAGE_KEY, key);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null,
  ) {
    super(message);
  }
}

/** Called when a signed-in key is refused (revoked meanwhile): the page signs out. */
let onUnauthorized: (() => void) | null = null;
export function whenUnauthorized(run: () => void): void {
  onUnauthorized = run;
}

export async function call<T>(
  key: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    json = null;
  }
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | null)?.error;
    if (res.status === 401) onUnauthorized?.();
    throw new ApiError(res.status, error?.message ?? `HTTP ${res.status}`, error?.code ?? null);
  }
  return json as T;
}

/** Checks a key before keeping it: the status of a read the dashboard needs (200 when fine). */
export async function tryKey(key: string): Promise<number> {
  const res = await fetch('/v1/users?limit=1', {
    headers: { authorization: `Bearer ${key}` },
    cache: 'no-store',
  });
  await res.text();
  return res.status;
}

/** /metrics as text (public, no key). */
export async function metricsText(): Promise<string> {
  const res = await fetch('/metrics', { cache: 'no-store' });
  return res.text();
}
