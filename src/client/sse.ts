/**
 * @module client/sse
 * What the client needs to read Server-Sent Events over `fetch`: a long id list split over
 * several streams (SSE has only the URL for its ids), and the position such a set of streams
 * resumes from. Pure functions.
 */

/**
 * Ids in one SSE URL at most (joined with commas). SSE has only the URL: a longer list is split
 * over several streams. Node refuses request heads over 16 KB; common proxies take request lines
 * of 8 KB (nginx's default buffers).
 */
export const SSE_URL_IDS_MAX_CHARS = 6000;

/** One of the SSE streams a connection is made of: its ids and the last position it saw. */
export interface SsePart {
  readonly ids: readonly string[];
  position: string | null;
  synced: boolean;
  recovered: boolean;
}

/** The `user_ids` value of a URL: each id encoded, joined with plain commas. */
export function idsParam(ids: readonly string[]): string {
  return ids.map(encodeURIComponent).join(',');
}

/** Ids in runs whose `user_ids` value (idsParam) stays within `max` characters (each run at least one id). */
export function splitIds(ids: readonly string[], max: number): string[][] {
  const runs: string[][] = [];
  let run: string[] = [];
  let length = 0;
  for (const id of ids) {
    const size = encodeURIComponent(id).length;
    const added = run.length === 0 ? size : length + 1 + size;
    if (run.length > 0 && added > max) {
      runs.push(run);
      run = [id];
      length = size;
    } else {
      run.push(id);
      length = added;
    }
  }
  if (run.length > 0 || runs.length === 0) runs.push(run);
  return runs;
}

/**
 * The position a set of streams resumes from: the earliest of theirs (a change replayed to a
 * stream that had it already is ignored, as any diff not newer than the map), or null when one
 * has none or they stand in different epochs (then a fresh snapshot).
 */
export function earliest(positions: readonly (string | null)[]): string | null {
  let best: { epoch: string; offset: number; text: string } | null = null;
  for (const p of positions) {
    if (p === null) return null;
    const at = p.lastIndexOf(':');
    const epoch = p.slice(0, at);
    const offset = Number(p.slice(at + 1));
    if (best !== null && best.epoch !== epoch) return null;
    if (best === null || offset < best.offset) best = { epoch, offset, text: p };
  }
  return best?.text ?? null;
}

/** The reader of a fetch body (typed here: the DOM library is not part of the build). */
export interface ChunkReader {
  read(): Promise<{ readonly done: boolean; readonly value?: Uint8Array }>;
}
