/**
 * @module http/viewer-reads
 * The presence reads as a viewer gets them: each user through the privacy projection. A user the
 * viewer may not see is answered exactly as an id that does not exist (listed in `unknown`, or
 * 404 with the same message). Users the viewer sees in full are sent from the engine's cached
 * JSON like the operator's reads; only reduced ones are projected, and their JSON is kept too.
 */

import type { PresenceEngine } from '../aggregator/engine';
import type { PresenceView } from '../normalizer/view';
import { applyAccess, type Access } from '../privacy/project';
import type { PrivacyService } from '../privacy/service';
import { projectChange } from '../privacy/stream';
import type { ViewerIdentity } from '../privacy/viewer-tokens';
import type { StreamPrivacy } from '../stream/hub';
import { ChangeMessage } from '../stream/message';

export interface ViewerReads {
  readonly engine: PresenceEngine;
  readonly privacy: PrivacyService;
  readonly now: () => number;
}

/** The access for one user, or null when the viewer gets "unknown". */
export function viewedAccess(deps: ViewerReads, viewer: ViewerIdentity, id: string): Access | null {
  if (!deps.engine.hasUser(id)) return null;
  const access = deps.privacy.access(id, viewer);
  return access.visible ? access : null;
}

const isFull = (a: Access): boolean => a.details && a.lastSeen;

/**
 * Reduced presence JSON, per user and kind of access: what it was made from (the user's full JSON),
 * and when. A projection depends on the access, not on who views, so viewers share entries; the
 * approximate last seen moves in days, so an entry is reused for a minute at most.
 */
interface Projected {
  readonly from: string;
  readonly kind: number;
  readonly at: number;
  readonly json: string;
}
const PROJECTED_LIMIT = 20_000;
const PROJECTED_MS = 60_000;
const projectedCache = new WeakMap<PrivacyService, Map<string, Projected>>();

function reducedJson(deps: ViewerReads, id: string, access: Access): string | undefined {
  const full = deps.engine.getJson(id);
  if (full === undefined) return undefined;
  const kind = (access.details ? 1 : 0) | (access.lastSeen ? 2 : 0) | (access.hiddenByOwnSettings ? 4 : 0);
  const now = deps.now();
  let cache = projectedCache.get(deps.privacy);
  if (cache === undefined) projectedCache.set(deps.privacy, (cache = new Map<string, Projected>()));
  const hit = cache.get(id);
  if (
    hit !== undefined &&
    hit.kind === kind &&
    hit.from === full &&
    now - hit.at < PROJECTED_MS &&
    now >= hit.at
  )
    return hit.json;
  // The cached JSON is the presence object serialized: parsed back, it is that object.
  const json = JSON.stringify(applyAccess(JSON.parse(full) as PresenceView, access, now));
  if (cache.size >= PROJECTED_LIMIT) cache.clear();
  cache.set(id, { from: full, kind, at: now, json });
  return json;
}

/** One user's presence JSON as the viewer sees it, or undefined (answered as an unknown user). */
export function viewerPresenceJson(
  deps: ViewerReads,
  viewer: ViewerIdentity,
  id: string,
): string | undefined {
  const access = viewedAccess(deps, viewer, id);
  if (access === null) return undefined;
  return isFull(access) ? deps.engine.getJson(id) : reducedJson(deps, id, access);
}

const UNKNOWN_AT = Buffer.from('},"unknown":');
const OPEN_LENGTH = Buffer.byteLength('{"presence":{');

/**
 * `{"presence":{…},"unknown":[…]}` as the viewer sees it, each id once, unknown ones in the order
 * asked. `list` is the list as the API received it (`a,b,c`), when it came as one: when the viewer
 * may see every user of it in full, the answer is the operator's, bytes, memo and all. Otherwise
 * the users seen in full still come as the engine's cached bytes, the reduced ones after them.
 */
export function viewerBatchJson(
  deps: ViewerReads,
  viewer: ViewerIdentity,
  ids: readonly string[],
  list?: string,
): Buffer {
  const { engine } = deps;
  const seen = new Set<string>();
  const full: string[] = [];
  const reduced: [string, Access][] = [];
  const unseen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) continue;
    seen.add(id);
    const access = viewedAccess(deps, viewer, id);
    if (access === null) unseen.add(id);
    else if (isFull(access)) full.push(id);
    else reduced.push([id, access]);
  }
  if (reduced.length === 0 && [...unseen].every((id) => !engine.hasUser(id)))
    return engine.getManyJson(list ?? ids);
  const body = engine.getManyJson(full);
  const cut = body.lastIndexOf(UNKNOWN_AT);
  // Users the engine cannot show now (rare: a creation the store has not committed).
  for (const id of JSON.parse(body.toString('utf8', cut + UNKNOWN_AT.length, body.length - 1)) as string[])
    unseen.add(id);
  const parts: Buffer[] = [body.subarray(0, cut)];
  let members = cut > OPEN_LENGTH;
  for (const [id, access] of reduced) {
    const json = reducedJson(deps, id, access);
    if (json === undefined) {
      unseen.add(id);
      continue;
    }
    parts.push(Buffer.from(`${members ? ',' : ''}${JSON.stringify(id)}:${json}`));
    members = true;
  }
  const unknown = [...seen].filter((id) => unseen.has(id));
  parts.push(Buffer.from(`},"unknown":${JSON.stringify(unknown)}}`));
  return Buffer.concat(parts);
}

/** How a viewer sees a user, as a number that changes when the view does (0: hidden). */
function kindOf(deps: ViewerReads, viewer: ViewerIdentity, id: string): number {
  const a = viewedAccess(deps, viewer, id);
  if (a === null) return 0;
  return 1 | (a.details ? 2 : 0) | (a.lastSeen ? 4 : 0) | (a.hiddenByOwnSettings ? 8 : 0);
}

/** The stream's view of privacy (stream/hub.ts StreamPrivacy), over the same reads as REST. */
export function streamPrivacy(deps: ViewerReads): StreamPrivacy {
  return {
    snapshotJson: (viewer, ids) => viewerBatchJson(deps, viewer, ids),
    kindOf: (viewer, id) => kindOf(deps, viewer, id),
    view(viewer, m) {
      const access = viewedAccess(deps, viewer, m.userId);
      if (access === null) return null;
      if (isFull(access)) return m;
      const data = projectChange(m.data(), access, deps.now());
      return data === null ? null : ChangeMessage.fromData(data, m.position);
    },
    current(viewer, id) {
      const json = viewerPresenceJson(deps, viewer, id);
      if (json === undefined) return null;
      return { kind: kindOf(deps, viewer, id), presence: JSON.parse(json) as Record<string, unknown> };
    },
    onChange: (listener) => deps.privacy.onChange(listener),
  };
}
