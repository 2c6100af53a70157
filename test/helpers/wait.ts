/**
 * @module test/helpers/wait
 * Waiting on real time without racing it: poll a condition until it holds. The limit only ends a
 * wait that is stuck, so it is generous; a busy machine makes the wait longer, never a failure.
 */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitUntil(
  done: () => boolean | Promise<boolean>,
  what = 'a condition',
  limitMs = 60_000,
): Promise<void> {
  const end = performance.now() + limitMs;
  while (!(await done())) {
    if (performance.now() > end) throw new Error(`still waiting for ${what} after ${limitMs} ms`);
    await sleep(20);
  }
}
