/**
 * @module http/viewer-reads
 * The presence reads as a viewer gets them: each user through the privacy projection. A user the
 * viewer may not see is answered exactly as an id that does not exist (listed in `unknown`, or
 * 404 with the same message). Users the viewer sees in full are sent from the engine's cached
 * JSON like the operator's reads; only reduced ones are built and serialized.
 */

import type { PresenceEngine } from '../aggregator/engine';
import { applyAccess, type Access } from '../privacy/project';
import type { PrivacyService } from '../privacy/service';
import type { ViewerIdentity } from '../privacy/viewer-tokens';

export interface ViewerReads {
  readonly engine: PresenceEngine;
  readonly privacy: PrivacyService;
  readonly now: () => number;
}

/** The access and the presence for one user, or null when the viewer gets "unknown". */
export function viewedAccess(deps: ViewerReads, viewer: ViewerIdentity, id: string): Access | null {
  if (!deps.engine.hasUser(id)) return null;
  const access = deps.privacy.access(id, viewer);
  return access.visible ? access : null;
}

/** One user's presence JSON as the viewer sees it, or undefined (answered as an unknown user). */
export function viewerPresenceJson(
  deps: ViewerReads,
  viewer: ViewerIdentity,
  id: string,
): string | undefined {
  const access = viewedAccess(deps, viewer, id);
  if (access === null) return undefined;
  if (access.details && access.lastSeen) return deps.engine.getJson(id);
  const p = deps.engine.getMany([id]).presence[id];
  if (p === undefined) return undefined;
  return JSON.stringify(applyAccess(p, access, deps.now()));
}

/**
 * `{"presence":{…},"unknown":[…]}` as the viewer sees it, each id once, in the order asked.
 * `list` is the list as the API received it (`a,b,c`), when it came as one: when the viewer may
 * see every one of the users in full, the answer is the operator's, bytes, memo and all.
 */
export function viewerBatchJson(
  deps: ViewerReads,
  viewer: ViewerIdentity,
  ids: readonly string[],
  list?: string,
): string | Buffer {
  let allFull = true;
  for (const id of ids) {
    if (!deps.engine.hasUser(id)) continue;
    const a = deps.privacy.access(id, viewer);
    if (!(a.visible && a.details && a.lastSeen)) {
      allFull = false;
      break;
    }
  }
  if (allFull) return deps.engine.getManyJson(list ?? ids);
  const seen = new Set<string>();
  const members: string[] = [];
  const unknown: string[] = [];
  for (const id of ids) {
    if (seen.has(id)) continue;
    seen.add(id);
    const json = viewerPresenceJson(deps, viewer, id);
    if (json === undefined) unknown.push(id);
    else members.push(`${JSON.stringify(id)}:${json}`);
  }
  return `{"presence":{${members.join(',')}},"unknown":${JSON.stringify(unknown)}}`;
}
