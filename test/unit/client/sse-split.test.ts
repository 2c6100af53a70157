/**
 * The client over SSE with a long id list: SSE has only the URL, so the list is split over
 * several streams, each URL short; they sync together (one onSync) and resume together from the
 * earliest position any of them saw. The streams are answered by a scripted `fetch`.
 */

import { PresenceClient, splitIds, SSE_URL_IDS_MAX_CHARS } from '../../../src/client';

interface Stream {
  readonly url: URL;
  push(event: string, data: unknown): void;
  end(): void;
}

/** A `fetch` whose event streams the test writes to. */
function scriptedFetch(): { streams: Stream[]; fetch: typeof fetch } {
  const streams: Stream[] = [];
  const encoder = new TextEncoder();
  const fake = (input: string | URL | Request): Promise<Response> => {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => (controller = c) });
    streams.push({
      url: new URL(input instanceof Request ? input.url : input),
      push: (event, data) =>
        controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)),
      end: () => controller.close(),
    });
    return Promise.resolve(
      new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }),
    );
  };
  return { streams, fetch: fake };
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

describe('client over SSE with a long id list', () => {
  const realFetch = globalThis.fetch;
  afterEach(() => {
    globalThis.fetch = realFetch;
  });

  it('splits ids into runs whose URL part stays short, in order, none lost', () => {
    const ids = Array.from({ length: 3000 }, (_, i) => `user-${String(i).padStart(6, '0')}`);
    const runs = splitIds(ids, SSE_URL_IDS_MAX_CHARS);
    expect(runs.length).toBeGreaterThan(1);
    expect(runs.flat()).toEqual(ids);
    for (const run of runs) expect(run.join(',').length).toBeLessThanOrEqual(SSE_URL_IDS_MAX_CHARS);
    expect(splitIds(['a:b', 'c'], 6)).toEqual([['a:b'], ['c']]); // measured encoded: a%3Ab is 5
    expect(splitIds(['a'.repeat(10)], 5)).toEqual([['a'.repeat(10)]]); // an id longer than the limit: its own run
    expect(splitIds([], 5)).toEqual([[]]);
  });

  it('opens one stream per run, syncs once all are in, and resumes all from the earliest position', async () => {
    const { streams, fetch } = scriptedFetch();
    globalThis.fetch = fetch;
    const ids = Array.from({ length: 2000 }, (_, i) => `user-${String(i).padStart(6, '0')}`);
    const c = new PresenceClient({
      url: 'http://svc',
      token: 'k',
      userIds: ids,
      transport: 'sse',
      reconnect: { minMs: 1, maxMs: 1 },
    });
    const syncs: boolean[] = [];
    c.onSync((recovered) => syncs.push(recovered));
    c.connect();
    await settle();
    const first = streams.splice(0);
    expect(first.length).toBe(splitIds(ids, SSE_URL_IDS_MAX_CHARS).length);
    expect(first.flatMap((s) => s.url.searchParams.get('user_ids')!.split(','))).toEqual(ids);
    for (const s of first) {
      expect(s.url.pathname).toBe('/v1/stream');
      expect(s.url.search.length).toBeLessThan(SSE_URL_IDS_MAX_CHARS + 100);
      expect(s.url.searchParams.has('since')).toBe(false);
    }
    // Each stream's snapshot: the client is in sync once the last one is in.
    const [a, b] = [first[0]!, first.at(-1)!];
    const idOf = (s: Stream) => s.url.searchParams.get('user_ids')!.split(',')[0]!;
    for (const [i, s] of first.entries()) {
      const id = idOf(s);
      s.push('snapshot', {
        type: 'snapshot',
        presence: { [id]: { user_id: id, version: 1, status: 'online' } },
        unknown: [],
        position: `e:${i === first.length - 1 ? 3 : 5}`,
      });
      await settle();
      expect(syncs).toEqual(i === first.length - 1 ? [true] : []);
    }
    expect(c.presence.size).toBe(first.length);
    // A change on one stream moves the map; the position to resume from stays the earliest seen.
    a.push('presence', {
      type: 'presence',
      user_id: idOf(a),
      version: 2,
      previous: { status: 'online', activity: null, custom_status: null },
      current: { user_id: idOf(a), version: 2, status: 'busy' },
      changed: ['status'],
      position: 'e:9',
    });
    await settle();
    expect(c.presence.get(idOf(a))?.status).toBe('busy');
    expect(c.lastPosition).toBe('e:3');
    // One stream is cut: the whole connection reconnects, every stream resuming from e:3.
    b.end();
    for (let i = 0; i < 50 && streams.length < first.length; i++) await new Promise((r) => setTimeout(r, 5));
    expect(streams.length).toBe(first.length);
    for (const s of streams) expect(s.url.searchParams.get('since')).toBe('e:3');
    for (const s of streams) s.push('resumed', { type: 'resumed', recovered: true, position: 'e:12' });
    await settle();
    expect(syncs).toEqual([true, true]);
    expect(c.lastPosition).toBe('e:12');
    c.close();
  });
});
