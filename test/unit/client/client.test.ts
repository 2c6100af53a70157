/**
 * The client's local map against scripted server messages (a fake WebSocket): diffs that arrive
 * before their snapshot are held back and applied after it, stale diffs are ignored, a resume
 * replays into the map, and the browser activity reporter's thresholds.
 */

import { PresenceClient, reportActivity, type WebSocketLike } from '../../../src/client';

class FakeWs implements WebSocketLike {
  static last: FakeWs;
  readyState = 0;
  sent: any[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeWs.last = this;
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(): void {
    this.readyState = 3;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  push(m: unknown): void {
    this.onmessage?.({ data: JSON.stringify(m) });
  }
}

const p = (user: string, version: number, status: string) => ({ user_id: user, version, status }) as any;
const diff = (user: string, version: number, status: string, position: string) => ({
  type: 'presence',
  user_id: user,
  version,
  previous: {},
  current: p(user, version, status),
  changed: ['status'],
  position,
});

function connected(userIds: string[] = ['a']) {
  const c = new PresenceClient({ url: 'http://svc', token: 'k', userIds, WebSocket: FakeWs });
  const changes: [string, number | undefined][] = [];
  c.onChange((id, now) => changes.push([id, now?.version]));
  c.connect();
  FakeWs.last.open();
  return { c, ws: FakeWs.last, changes };
}

describe('client local map', () => {
  it('puts the ids and the key in the WebSocket URL', () => {
    const { ws } = connected(['a', 'b']);
    const url = new URL(ws.url);
    expect(url.pathname).toBe('/v1/ws');
    expect(url.protocol).toBe('ws:');
    expect(url.searchParams.get('user_ids')).toBe('a,b');
    expect(url.searchParams.get('access_token')).toBe('k');
  });

  it('sends a long id list in its first message, not the URL, and resumes with it after a reconnect', () => {
    jest.useFakeTimers();
    try {
      const ids = Array.from({ length: 1000 }, (_, i) => `user-${String(i).padStart(5, '0')}`);
      const { c, ws } = connected(ids);
      expect(new URL(ws.url).searchParams.has('user_ids')).toBe(false);
      expect(new URL(ws.url).searchParams.has('since')).toBe(false);
      expect(ws.sent).toEqual([{ type: 'subscribe', user_ids: ids }]);
      ws.push({ type: 'snapshot', presence: {}, unknown: ids, position: 'e:7' });
      ws.onclose?.({ code: 1006, reason: '' });
      jest.advanceTimersByTime(1000); // the first back-off is at most 500 ms
      const again = FakeWs.last;
      expect(again).not.toBe(ws);
      expect(new URL(again.url).search.length).toBeLessThan(200);
      again.open();
      expect(again.sent).toEqual([{ type: 'resume', since: 'e:7', user_ids: ids }]);
      c.close();
    } finally {
      jest.useRealTimers();
    }
  });

  it('holds back diffs of an id whose snapshot has not arrived, then applies the newer ones after it', () => {
    const { c, ws, changes } = connected();
    ws.push({ type: 'snapshot', presence: { a: p('a', 1, 'online') }, unknown: [], position: 'e:1' });
    c.subscribe(['b']);
    expect(ws.sent).toEqual([{ type: 'subscribe', user_ids: ['b'] }]);
    ws.push(diff('b', 5, 'busy', 'e:2')); // before b's snapshot
    ws.push(diff('b', 6, 'away', 'e:3'));
    expect(c.presence.has('b')).toBe(false);
    ws.push({ type: 'snapshot', presence: { b: p('b', 5, 'busy') }, unknown: [], position: 'e:3' });
    expect(c.presence.get('b')).toMatchObject({ version: 6, status: 'away' });
    expect(changes).toEqual([
      ['a', 1],
      ['b', 5],
      ['b', 6],
    ]);
  });

  it('ignores a diff not newer than what it holds; a replay then resumed keeps the map in order', () => {
    const { c, ws } = connected();
    const syncs: boolean[] = [];
    c.onSync((r) => syncs.push(r));
    ws.push({ type: 'snapshot', presence: { a: p('a', 3, 'online') }, unknown: [], position: 'e:3' });
    ws.push(diff('a', 3, 'busy', 'e:4'));
    expect(c.presence.get('a')?.status).toBe('online');
    ws.push(diff('a', 4, 'busy', 'e:5'));
    ws.push({ type: 'resumed', recovered: true, position: 'e:5' });
    expect(c.presence.get('a')).toMatchObject({ version: 4, status: 'busy' });
    expect(c.lastPosition).toBe('e:5');
    expect(syncs).toEqual([true, true]);
  });

  it('an unknown id is not in the map until it appears; a fresh snapshot reports recovered false', () => {
    const { c, ws } = connected(['x']);
    const syncs: boolean[] = [];
    c.onSync((r) => syncs.push(r));
    ws.push({ type: 'snapshot', presence: {}, unknown: ['x'], position: 'e:0' });
    expect(c.presence.has('x')).toBe(false);
    ws.push(diff('x', 1, 'online', 'e:1'));
    expect(c.presence.get('x')?.status).toBe('online');
    ws.push({
      type: 'snapshot',
      presence: { x: p('x', 2, 'away') },
      unknown: [],
      position: 'f:9',
      recovered: false,
    });
    expect(c.presence.get('x')?.status).toBe('away');
    expect(syncs).toEqual([true, false]);
    c.close();
  });
});

describe('browser activity reporting', () => {
  function page() {
    const listeners = new Map<string, (() => void)[]>();
    return {
      visibilityState: 'visible',
      addEventListener(type: string, l: () => void) {
        listeners.set(type, [...(listeners.get(type) ?? []), l]);
      },
      removeEventListener(type: string, l: () => void) {
        listeners.set(
          type,
          (listeners.get(type) ?? []).filter((x) => x !== l),
        );
      },
      fire(type: string) {
        for (const l of listeners.get(type) ?? []) l();
      },
    };
  }

  it('idle after 5 minutes without input, away 1 minute after hidden, online on the next input', () => {
    let now = 0;
    const doc = page();
    const reported: string[] = [];
    const r = reportActivity({ setStatus: (s) => reported.push(s) }, { document: doc, now: () => now });
    now = 4 * 60_000;
    r.check();
    expect(reported).toEqual([]);
    now = 5 * 60_000;
    r.check();
    expect(reported).toEqual(['idle']);
    doc.fire('keydown');
    expect(reported).toEqual(['idle', 'online']);
    doc.visibilityState = 'hidden';
    doc.fire('visibilitychange');
    now += 59_000;
    r.check();
    expect(reported).toEqual(['idle', 'online']);
    now += 1000;
    r.check();
    expect(reported).toEqual(['idle', 'online', 'away']);
    doc.visibilityState = 'visible';
    doc.fire('visibilitychange');
    expect(reported).toEqual(['idle', 'online', 'away', 'online']);
    r.stop();
  });

  it('takes its thresholds from the options', () => {
    let now = 0;
    const reported: string[] = [];
    const r = reportActivity(
      { setStatus: (s) => reported.push(s) },
      { document: page(), now: () => now, idleMs: 1000 },
    );
    now = 1000;
    r.check();
    expect(reported).toEqual(['idle']);
    r.stop();
  });
});
