/**
 * Port conformance: `WebhookStore` (endpoints, the outbox of events, deliveries, attempts), on
 * SQLite and on PostgreSQL (backends.ts).
 */

import type { AsyncStores, StoreTx } from '../../../src/core/ports';
import { delivery, endpoint, event, failure, forEachStore, UNIQUE, user } from './backends';

/** Writes an event and one pending delivery of it per endpoint, in one transaction. */
async function queue(
  s: AsyncStores,
  msgId: string,
  opts: {
    userId?: string | null;
    version?: number | null;
    at?: number;
    lane?: string;
    endpoints?: string[];
  } = {},
): Promise<{ seq: number; ids: number[] }> {
  return s.transaction(async (tx: StoreTx) => {
    const at = opts.at ?? 100;
    const { seqs, ids } = await s.webhooks.insertOutbox(
      tx,
      [
        event(
          msgId,
          'presence.changed',
          opts.userId === undefined ? 'ana' : opts.userId,
          opts.version === undefined ? 1 : opts.version,
          at,
          `{"id":"${msgId}"}`,
        ),
      ],
      (opts.endpoints ?? ['ep_1']).map((ep) => delivery(ep, 0, opts.lane ?? 'u:ana', at, at, false, at)),
    );
    return { seq: seqs[0]!, ids };
  });
}

forEachStore('WebhookStore', (backend) => {
  it('saves endpoints (an update keeps deliveries), lists them oldest first, deletes with deliveries', async () => {
    const s = await backend.open();
    const w = s.webhooks;
    await w.saveEndpoint(endpoint('ep_2', { createdAt: 2, userIds: ['ana', 'bo'], events: null }));
    await w.saveEndpoint(endpoint('ep_1'));
    const { ids } = await queue(s, 'm1');
    const updated = endpoint('ep_1', {
      url: 'https://example.test/new',
      enabled: false,
      disabledReason: 'manual',
      disabledAt: 5,
      failingSince: 4,
      coalesceMs: 250,
      sealedPreviousSecret: 'v1.prev',
      previousExpiresAt: 9,
      updatedAt: 5,
    });
    await w.saveEndpoint(updated);
    expect(await w.endpoints()).toEqual([
      updated,
      endpoint('ep_2', { createdAt: 2, userIds: ['ana', 'bo'], events: null }),
    ]);
    expect((await w.loadPending('ep_1', 0, 10)).map((r) => r.id)).toEqual(ids);
    expect(await w.endpointSecrets()).toEqual([
      { id: 'ep_1', secret: 'v1.k.iv.tag.secret-ep_1', previousSecret: 'v1.prev', format: 'sealed' },
      { id: 'ep_2', secret: 'v1.k.iv.tag.secret-ep_2', previousSecret: null, format: 'sealed' },
    ]);
    await w.writeSealedSecrets('ep_2', 'v1.new', 'v1.old');
    expect((await w.endpoints())[1]).toMatchObject({
      sealedSecret: 'v1.new',
      sealedPreviousSecret: 'v1.old',
    });
    expect(await w.deleteEndpoint('ep_1')).toBe(true);
    expect(await w.deleteEndpoint('ep_1')).toBe(false);
    expect(await w.loadPending('ep_1', 0, 10)).toEqual([]);
    expect((await w.endpoints()).map((e) => e.id)).toEqual(['ep_2']);
  });

  it('writes events and deliveries only inside a transaction of this store', async () => {
    const s = await backend.open();
    await s.webhooks.saveEndpoint(endpoint('ep_1'));
    const foreign: StoreTx = { store: backend.name === 'pg' ? 'sqlite' : 'pg' };
    await expect(
      s.webhooks.insertOutbox(foreign, [event('m1', 'presence.changed', 'ana', 1, 1, '{}')], []),
    ).rejects.toThrow(/another store/);
    const { seq, ids } = await queue(s, 'm1', { endpoints: ['ep_1'] });
    expect(seq).toBeGreaterThan(0);
    expect(ids).toHaveLength(1);
    // msg_id is unique.
    expect(await failure(queue(s, 'm1'))).toMatch(UNIQUE);
  });

  it('loads pending deliveries in id order after an id, with their events', async () => {
    const s = await backend.open();
    await s.webhooks.saveEndpoint(endpoint('ep_1'));
    await s.webhooks.saveEndpoint(endpoint('ep_2'));
    const a = await queue(s, 'm1', { endpoints: ['ep_1', 'ep_2'] });
    const b = await queue(s, 'm2', { version: 2, at: 200 });
    const c = await queue(s, 'm3', { version: 3, at: 300, lane: 'u:bo' });
    const pending = await s.webhooks.loadPending('ep_1', 0, 10);
    expect(pending.map((r) => r.id)).toEqual([a.ids[0], b.ids[0], c.ids[0]]);
    expect(pending[1]).toEqual({
      id: b.ids[0],
      event_seq: b.seq,
      ordering_key: 'u:ana',
      attempts: 0,
      next_attempt_at: 200,
      not_before: 200,
      replay: 0,
      created_at: 200,
      msg_id: 'm2',
      type: 'presence.changed',
      payload: '{"id":"m2"}',
    });
    expect((await s.webhooks.loadPending('ep_1', a.ids[0]!, 1)).map((r) => r.id)).toEqual([b.ids[0]]);
    expect((await s.webhooks.loadPending('ep_2', 0, 10)).map((r) => r.msg_id)).toEqual(['m1']);
  });

  it('records outcomes: failed attempts get rows, a success lives in the delivery; the log pages newest first', async () => {
    const s = await backend.open();
    await s.webhooks.saveEndpoint(endpoint('ep_1'));
    const [d1] = (await queue(s, 'm1')).ids;
    const [d2] = (await queue(s, 'm2', { version: 2 })).ids;
    await s.webhooks.writeOutcomes(
      [
        {
          deliveryId: d1!,
          attempt: 1,
          at: 1_000,
          statusCode: 500,
          latencyMs: 12,
          error: 'HTTP 500',
          nextAttemptAt: 2_000,
          status: 'pending',
        },
        {
          deliveryId: d1!,
          attempt: 2,
          at: 2_000,
          statusCode: 200,
          latencyMs: 7,
          error: null,
          nextAttemptAt: null,
          status: 'delivered',
        },
      ],
      [{ endpointId: 'ep_1', since: 1_000 }],
    );
    expect((await s.webhooks.endpoints())[0]?.failingSince).toBe(1_000);
    const log = await s.webhooks.page('ep_1', null, Number.MAX_SAFE_INTEGER, 10);
    expect(log.map((r) => [r.id, r.status])).toEqual([
      [d2, 'pending'],
      [d1, 'delivered'],
    ]);
    expect(log[1]).toEqual({
      id: d1,
      status: 'delivered',
      attempts: 2,
      next_attempt_at: null,
      replay: 0,
      last_attempt_at: 2_000,
      last_status_code: 200,
      last_latency_ms: 7,
      last_error: null,
      created_at: 100,
      updated_at: 2_007,
      msg_id: 'm1',
      type: 'presence.changed',
      user_id: 'ana',
      version: 1,
    });
    expect(
      (await s.webhooks.page('ep_1', 'delivered', Number.MAX_SAFE_INTEGER, 10)).map((r) => r.id),
    ).toEqual([d1]);
    expect((await s.webhooks.page('ep_1', null, d2!, 10)).map((r) => r.id)).toEqual([d1]);
    expect(await s.webhooks.attemptsOf([d1!, d2!])).toEqual([
      {
        delivery_id: d1,
        attempt: 1,
        at: 1_000,
        status_code: 500,
        latency_ms: 12,
        error: 'HTTP 500',
        next_attempt_at: 2_000,
      },
    ]);
    expect(await s.webhooks.attemptsOf([])).toEqual([]);
    expect((await s.webhooks.loadPending('ep_1', 0, 10)).map((r) => r.id)).toEqual([d2]);
  });

  it('fails pending deliveries, coalesces and repoints them', async () => {
    const s = await backend.open();
    await s.webhooks.saveEndpoint(endpoint('ep_1'));
    const [d1] = (await queue(s, 'm1')).ids;
    const second = await queue(s, 'm2', { version: 2, at: 150 });
    const [d3] = (await queue(s, 'm3', { version: 3 })).ids;
    await s.webhooks.markCoalesced(d1!, 'coalesced into m2', 160);
    const merged = await s.webhooks.repoint(second.ids[0]!, second.seq, 'm2+', '{"merged":true}', 170);
    expect(merged).toBeGreaterThan(second.seq);
    const pending = await s.webhooks.loadPending('ep_1', 0, 10);
    expect(pending.map((r) => [r.id, r.msg_id, r.payload, r.event_seq])).toEqual([
      [second.ids[0], 'm2+', '{"merged":true}', merged],
      [d3, 'm3', '{"id":"m3"}', pending[1]!.event_seq],
    ]);
    // The merged event keeps the user, version and time of the event it replaces.
    const log = await s.webhooks.page('ep_1', null, Number.MAX_SAFE_INTEGER, 10);
    expect(log.find((r) => r.id === second.ids[0])).toMatchObject({
      msg_id: 'm2+',
      user_id: 'ana',
      version: 2,
    });
    expect(log.find((r) => r.id === d1)).toMatchObject({
      status: 'coalesced',
      last_error: 'coalesced into m2',
    });
    expect(await s.webhooks.failPending('ep_1', 'endpoint disabled', 180)).toBe(2);
    expect(await s.webhooks.failPending('ep_1', 'endpoint disabled', 181)).toBe(0);
    expect(await s.webhooks.loadPending('ep_1', 0, 10)).toEqual([]);
    expect(
      (await s.webhooks.page('ep_1', 'failed', Number.MAX_SAFE_INTEGER, 10)).map((r) => r.last_error),
    ).toEqual(['endpoint disabled', 'endpoint disabled']);
  });

  it('replays sent events since a time, per lane in version order', async () => {
    const s = await backend.open();
    await s.webhooks.saveEndpoint(endpoint('ep_1'));
    const sent = [
      await queue(s, 'b2', { lane: 'u:bo', version: 2, at: 300 }),
      await queue(s, 'a1', { lane: 'u:ana', version: 1, at: 50 }),
      await queue(s, 'a3', { lane: 'u:ana', version: 3, at: 200 }),
      await queue(s, 'a2', { lane: 'u:ana', version: 2, at: 100 }),
      await queue(s, 'b1', { lane: 'u:bo', version: 1, at: 250 }),
    ];
    await s.webhooks.writeOutcomes(
      sent.map(({ ids }) => ({
        deliveryId: ids[0]!,
        attempt: 1,
        at: 400,
        statusCode: 200,
        latencyMs: 1,
        error: null,
        nextAttemptAt: null,
        status: 'delivered' as const,
      })),
      [],
    );
    const pendingBefore = await queue(s, 'p', { lane: 'u:cy', at: 500 });
    expect(await s.webhooks.replay('ep_1', 100, 1_000)).toBe(4);
    const replayed = (await s.webhooks.loadPending('ep_1', pendingBefore.ids[0]!, 10)).map((r) => [
      r.msg_id,
      r.replay,
      r.ordering_key,
    ]);
    expect(replayed).toEqual([
      ['a2', 1, 'u:ana'],
      ['a3', 1, 'u:ana'],
      ['b1', 1, 'u:bo'],
      ['b2', 1, 'u:bo'],
    ]);
  });

  it("forgets a user's events and deliveries but user.deleted, in the caller's transaction", async () => {
    const s = await backend.open();
    await s.presence.write([user('ana'), user('bo')]);
    await s.webhooks.saveEndpoint(endpoint('ep_1'));
    await s.webhooks.saveEndpoint(endpoint('ep_2'));
    const a1 = await queue(s, 'a1', { endpoints: ['ep_1', 'ep_2'] });
    const a2 = await queue(s, 'a2', { version: 2 });
    await s.webhooks.writeOutcomes(
      [
        {
          deliveryId: a2.ids[0]!,
          attempt: 1,
          at: 1,
          statusCode: 500,
          latencyMs: 1,
          error: 'x',
          nextAttemptAt: null,
          status: 'failed',
        },
      ],
      [],
    );
    const bo = await queue(s, 'b1', { userId: 'bo', lane: 'u:bo' });
    let forgot: { pending: Map<string, Set<number>>; events: number } | null = null;
    await s.presence.deleteUser('ana', async (tx) => {
      forgot = await s.webhooks.forgetUser(tx, 'ana');
      await s.webhooks.insertOutbox(
        tx,
        [event('gone', 'user.deleted', 'ana', 2, 5, '{}')],
        [delivery('ep_1', 0, 'u:ana', 5, 5, false, 5)],
      );
    });
    expect(forgot!.events).toBe(2);
    expect(forgot!.pending).toEqual(
      new Map([
        ['ep_1', new Set([a1.ids[0]])],
        ['ep_2', new Set([a1.ids[1]])],
      ]),
    );
    expect((await s.webhooks.loadPending('ep_1', 0, 10)).map((r) => r.msg_id)).toEqual(['b1', 'gone']);
    expect(await s.webhooks.loadPending('ep_2', 0, 10)).toEqual([]);
    expect(await s.webhooks.attemptsOf([a2.ids[0]!])).toEqual([]);
    expect(bo.ids).toHaveLength(1);
  });

  it('prunes finished deliveries and unreferenced events, in chunks', async () => {
    const s = await backend.open();
    await s.webhooks.saveEndpoint(endpoint('ep_1'));
    const done = [await queue(s, 'm1', { at: 10 }), await queue(s, 'm2', { at: 10, version: 2 })];
    const open = await queue(s, 'm3', { at: 10, version: 3 });
    await s.webhooks.writeOutcomes(
      done.map(({ ids }) => ({
        deliveryId: ids[0]!,
        attempt: 1,
        at: 20,
        statusCode: 200,
        latencyMs: 0,
        error: null,
        nextAttemptAt: null,
        status: 'delivered' as const,
      })),
      [],
    );
    expect(await s.webhooks.pruneDeliveries(20, 10)).toBe(0);
    expect(await s.webhooks.pruneDeliveries(21, 1)).toBe(1);
    expect(await s.webhooks.pruneDeliveries(21, 10)).toBe(1);
    expect(await s.webhooks.pruneDeliveries(21, 10)).toBe(0);
    expect(await s.webhooks.pruneEvents(11, 10)).toBe(2);
    expect(await s.webhooks.pruneEvents(11, 10)).toBe(0);
    expect((await s.webhooks.loadPending('ep_1', 0, 10)).map((r) => r.id)).toEqual(open.ids);
  });

  it('scrubbing returns what fn returns, with its writes kept', async () => {
    const s = await backend.open();
    await s.webhooks.saveEndpoint(endpoint('ep_1'));
    const { result, walTruncated } = await s.webhooks.scrubbing(() =>
      s.webhooks.transaction(async (tx) => {
        await s.webhooks.writeSealedSecrets('ep_1', 'v1.resealed', null, tx);
        return 'done';
      }),
    );
    expect(result).toBe('done');
    expect(typeof walTruncated).toBe('boolean');
    expect((await s.webhooks.endpointSecrets())[0]?.secret).toBe('v1.resealed');
  });
});
