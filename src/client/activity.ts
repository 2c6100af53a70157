/**
 * @module client/activity
 * In a browser, the client can be the device itself and report what presence clients report:
 * `idle` after `idleMs` (5 minutes) without input, `away` once the page has been hidden for
 * `awayAfterHiddenMs` (1 minute), `online` again on the next input. It only calls
 * `client.setStatus` when the status changes, after `client.identify`.
 *
 * The page, the clock and the check timer are injectable, so it runs (and is tested) in Node.
 */

import type { Status } from '../types';

/** The part of `document` (or `window`) it listens to. */
export interface ActivityTarget {
  addEventListener(type: string, listener: () => void, options?: { passive?: boolean }): void;
  removeEventListener(type: string, listener: () => void): void;
}

export interface ActivityOptions {
  /** Without input this long: idle (default 5 minutes). */
  readonly idleMs?: number;
  /** Hidden this long: away (default 1 minute). */
  readonly awayAfterHiddenMs?: number;
  /** Defaults to the global `document`. */
  readonly document?: ActivityTarget & { readonly visibilityState?: string };
  readonly now?: () => number;
  /** How often the thresholds are looked at (default every 5 s). */
  readonly checkEveryMs?: number;
}

const INPUT_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart', 'scroll'];

/** Starts reporting; returns a function that stops it. */
export function reportActivity(
  client: { setStatus(status: Status): void },
  options: ActivityOptions = {},
): { stop(): void; check(): Status } {
  const doc = options.document ?? (globalThis as { document?: ActivityOptions['document'] }).document;
  if (doc === undefined) throw new Error('reportActivity needs a document (a browser, or options.document)');
  const now = options.now ?? (() => Date.now());
  const idleMs = options.idleMs ?? 5 * 60_000;
  const awayMs = options.awayAfterHiddenMs ?? 60_000;
  let lastInput = now();
  let hiddenSince: number | null = doc.visibilityState === 'hidden' ? now() : null;
  let reported: Status = 'online';

  const check = (): Status => {
    const t = now();
    const status: Status =
      hiddenSince !== null && t - hiddenSince >= awayMs
        ? 'away'
        : t - lastInput >= idleMs
          ? 'idle'
          : 'online';
    if (status !== reported) {
      reported = status;
      client.setStatus(status);
    }
    return status;
  };
  const onInput = (): void => {
    lastInput = now();
    if (reported !== 'online') check();
  };
  const onVisibility = (): void => {
    hiddenSince = doc.visibilityState === 'hidden' ? (hiddenSince ?? now()) : null;
    if (hiddenSince === null) lastInput = now(); // coming back to the page counts as input
    check();
  };
  for (const e of INPUT_EVENTS) doc.addEventListener(e, onInput, { passive: true });
  doc.addEventListener('visibilitychange', onVisibility);
  const timer = setInterval(check, options.checkEveryMs ?? 5000);
  (timer as { unref?: () => void }).unref?.();
  return {
    check,
    stop() {
      clearInterval(timer);
      for (const e of INPUT_EVENTS) doc.removeEventListener(e, onInput);
      doc.removeEventListener('visibilitychange', onVisibility);
    },
  };
}
