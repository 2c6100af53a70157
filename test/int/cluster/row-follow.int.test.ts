/**
 * Several nodes following each other's users, accounts and privacy (cluster/row-follower.ts): two
 * nodes in process, each with its own pool, engine, privacy service and LISTEN connection, on one
 * PostgreSQL database of their own (migrations/pg/0009 announces every such row written). What
 * one node writes is taken into the other's memory once its re-read lands (waits are for that
 * condition, bounded generously; no clock decides it); a re-read never undoes a newer write of the
 * node itself; a lost listening connection is replaced and everything is re-read once, so an
 * announcement missed meanwhile does not leave the node wrong; polling shares follow a link made
 * on either node, and an account is polled by one node at a time.
 */

import { randomBytes } from 'node:crypto';

import { CONNECTORS } from '../../../connectors';
import { ConnectorHost } from '../../../src/aggregator/connector-host';
import { PresenceEngine } from '../../../src/aggregator/engine';
import { FOLLOW_CHANNEL, RowFollower, type FollowReads } from '../../../src/cluster/row-follower';
import { FakeClock } from '../../../src/core/clock';
import type { Connector, ConnectorContext } from '../../../src/core/connector';
import { silentLog } from '../../../src/core/log';
import type { AccountRef, PollShares } from '../../../src/core/ports';
import { Ladder, type Platform } from '../../../src/core/presence';
import type { PrivacySettings } from '../../../src/privacy/project';
import { PrivacyService } from '../../../src/privacy/service';
import { ViewerTokens } from '../../../src/privacy/viewer-tokens';
import { openPgStores, type PgStores } from '../../../src/store/pg';
import { PgFollowReads } from '../../../src/store/pg/follow-reads';
import { LISTENER_APPLICATION, PgListener } from '../../../src/store/pg/listener';
import { slackActive } from '../../helpers/observations';
import { createTestDatabase, type TestDatabase } from '../../helpers/pg-database';
import { TcpProxy } from '../../helpers/tcp-proxy';
import { waitUntil } from '../../helpers/wait';
import { Deployment } from '../redis/helpers';

const EVERYONE: PrivacySettings = {
  presence: 'everyone',
  lastSeen: 'everyone',
  details: 'everyone',
  reciprocal: false,
};
const HIDDEN: PrivacySettings = {
  presence: 'nobody',
  lastSeen: 'nobody',
  details: 'nobody',
  reciprocal: false,
};
const SLACK: AccountRef = { platform: 'slack', workspaceId: 'T1', externalId: 'U1' };
const SLACK2: AccountRef = { platform: 'slack', workspaceId: 'T1', externalId: 'U2' };
/** Every node's viewer token key (a deployment shares PRESENCE_SECRET_KEY). */
const SECRET = randomBytes(32).toString('base64');

interface Node {
  readonly stores: PgStores;
  readonly engine: PresenceEngine;
  readonly privacy: PrivacyService;
  readonly listener: PgListener;
  readonly rows: RowFollower;
  readonly tokens: ViewerTokens;
  /** What the privacy service announced to its listeners (a stream re-projects these users). */
  readonly heard: string[];
  /** The platforms whose polling shares the follower asked to renew. */
  readonly renewals: Platform[];
  host: ConnectorHost | null;
}

let database: TestDatabase;
let clock: FakeClock;
let deployment: Deployment | null = null;
const nodes: Node[] = [];

beforeEach(async () => {
  database = await createTestDatabase();
  clock = new FakeClock(Date.now());
});

afterEach(async () => {
  for (const n of nodes.splice(0)) {
    await n.host?.stopAll();
    await n.listener.close();
    await n.rows.stop();
    await n.engine.stop();
    await n.stores.close();
  }
  await deployment?.close();
  deployment = null;
  await database.drop();
});

/** A node as main.ts composes one: listening before the loads, following once they are done. */
async function node(
  options: {
    retryMs?: number;
    probeMs?: number;
    pageSize?: number;
    turnSize?: number;
    reads?: (real: FollowReads) => FollowReads;
  } = {},
): Promise<Node> {
  const stores = await openPgStores({ connectionString: database.url, clock, max: 4 });
  const listener = await PgListener.open({
    connectionString: database.url,
    channel: FOLLOW_CHANNEL,
    log: silentLog,
    ...(options.probeMs === undefined ? {} : { probeMs: options.probeMs }),
  });
  const engine = new PresenceEngine({ clock, store: stores.presence, ladder: new Ladder() });
  const privacy = await new PrivacyService(stores.privacy, EVERYONE, clock).load();
  await engine.load();
  const heard: string[] = [];
  privacy.onChange((id) => heard.push(id));
  const tokens = new ViewerTokens(stores.privacy, clock, (id) => engine.hasUser(id), SECRET);
  engine.onUserDelete({
    stage: () => undefined,
    committed: (id) => {
      privacy.forget(id);
      tokens.forget(id);
    },
  });
  engine.onUserForgotten((id) => tokens.forget(id));
  const renewals: Platform[] = [];
  const n: Node = {
    stores,
    engine,
    privacy,
    listener,
    heard,
    renewals,
    host: null,
    tokens,
    rows: new RowFollower({
      reads: (options.reads ?? ((r) => r))(new PgFollowReads(stores.pool)),
      directory: engine,
      privacy,
      log: silentLog,
      accountsChanged: (platforms) => {
        renewals.push(...platforms);
        void n.host?.renewSharesOf(platforms);
      },
      ...(options.retryMs === undefined ? {} : { retryMs: options.retryMs }),
      ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
      ...(options.turnSize === undefined ? {} : { turnSize: options.turnSize }),
    }),
  };
  listener.start(n.rows);
  nodes.push(n);
  return n;
}

const sees = (n: Node, target: string, viewer: string): boolean =>
  n.privacy.access(target, { userId: viewer }).visible;

it('a privacy rule, contacts and blocks set on one node apply on the other', async () => {
  const a = await node();
  const b = await node();
  await a.engine.putUser('ann', {});
  await a.engine.putUser('bob', {});
  await a.engine.putUser('cy', {});
  expect(sees(b, 'ann', 'bob')).toBe(true);

  await a.privacy.setSettings('ann', { ...HIDDEN, presence: 'contacts' });
  await waitUntil(() => !sees(b, 'ann', 'bob'), "B applies ann's rule");
  expect(b.privacy.of('ann').settings).toEqual({ ...HIDDEN, presence: 'contacts' });
  expect(b.heard).toContain('ann'); // B's open streams re-project ann

  await a.privacy.addContact('ann', 'bob');
  await waitUntil(() => sees(b, 'ann', 'bob'), 'B takes the contact');
  expect(sees(b, 'ann', 'cy')).toBe(false);

  // the other way round, and blocks
  await b.privacy.setBlocked('cy', ['bob']);
  await waitUntil(() => !sees(a, 'cy', 'bob'), "A takes cy's block");
  await b.privacy.removeContact('ann', 'bob');
  await waitUntil(() => !sees(a, 'ann', 'bob'), 'A takes the removed contact');

  // a deleted user's rows, and the rows of others naming them, go (a cascade is announced too)
  await a.privacy.setContacts('cy', ['ann']);
  await waitUntil(() => b.privacy.of('cy').contacts.has('ann'), 'B takes the contact list');
  expect(await a.engine.deleteUser('ann')).toBe(true);
  // (one transaction's announcements may reach B in more than one read of its socket: waited for)
  await waitUntil(
    () =>
      !b.privacy.of('cy').contacts.has('ann') &&
      !b.engine.hasUser('ann') &&
      b.privacy.of('ann').settings === EVERYONE,
    'B forgets ann',
  );
});

it('a user created without a presence change, and deleted, on one node is known or forgotten on the other', async () => {
  const a = await node();
  const b = await node();
  await a.engine.putUser('dee', { displayName: 'Dee', timezone: 'Europe/Paris' });
  await waitUntil(() => b.engine.hasUser('dee'), 'B knows dee');
  expect(b.engine.get('dee')).toMatchObject({ user_id: 'dee', status: 'offline' });
  expect((await b.engine.getUser('dee'))?.user).toMatchObject({
    displayName: 'Dee',
    timezone: 'Europe/Paris',
  });

  // a change of the record is read from the row on every node
  await a.engine.putUser('dee', { displayName: 'Dee D.' });
  expect((await b.engine.getUser('dee'))?.user.displayName).toBe('Dee D.');

  expect(await a.engine.deleteUser('dee')).toBe(true);
  await waitUntil(() => !b.engine.hasUser('dee'), 'B forgets dee');
  expect(await b.engine.getUser('dee')).toBeNull();
});

it('an account linked, moved and unlinked on one node is resolved alike on the other', async () => {
  const a = await node();
  const b = await node();
  await a.engine.putUser('eve', {});
  await a.engine.putUser('fay', {});
  await waitUntil(() => b.engine.hasUser('eve') && b.engine.hasUser('fay'), 'B knows both');

  expect(await a.engine.linkAccount('eve', SLACK)).toMatchObject({ linked: true });
  await waitUntil(() => b.engine.resolveAccount(SLACK) === 'eve', 'B resolves the account');
  expect(b.engine.accountsFor('slack')).toEqual([SLACK]);
  // B's polling shares are renewed for it; A's too, for its own link
  expect(b.renewals).toContain('slack');
  await waitUntil(() => a.renewals.includes('slack'), "A's own announcement");

  // a report for the account through B now lands on eve
  const ack = b.engine.reportAccount(
    SLACK,
    {
      state: slackActive(),
      devices: null,
    },
    60_000,
  );
  expect(ack).not.toBe(false);
  await ack;
  expect(b.engine.state('eve')).toMatchObject({ status: 'online' });

  expect(await a.engine.unlinkAccount('eve', SLACK)).toBe(true);
  await waitUntil(() => b.engine.resolveAccount(SLACK) === undefined, 'B drops the account');
  expect(b.engine.accountsFor('slack')).toEqual([]);
  expect(
    b.engine.reportAccount(
      SLACK,
      {
        state: { status: 'busy', activity: null, customStatus: null, source: 'app', raw: 'x', label: 'x' },
        devices: null,
      },
      60_000,
    ),
  ).toBe(false);

  // linked again, to another user, through B
  await b.engine.linkAccount('fay', SLACK);
  await waitUntil(() => a.engine.resolveAccount(SLACK) === 'fay', 'A resolves it to fay');
});

it("a re-read that predates this node's own write does not undo it", async () => {
  const a = await node();
  await a.engine.putUser('gus', {});
  await a.rows.idle();
  // what a re-read begun now would read: gus has no settings yet
  const mark = a.privacy.mark();
  const before = await new PgFollowReads(a.stores.pool).privacy(['gus']);
  await a.privacy.setSettings('gus', HIDDEN); // this node's write, after that read
  expect(a.privacy.follow(['gus'], before, mark)).toBe(0);
  expect(a.privacy.of('gus').settings).toEqual(HIDDEN);

  const dirMark = a.engine.directoryMark();
  const noAccount = await new PgFollowReads(a.stores.pool).accounts([SLACK]);
  await a.engine.linkAccount('gus', SLACK);
  a.engine.followAccounts([SLACK], noAccount, dirMark);
  expect(a.engine.resolveAccount(SLACK)).toBe('gus');
  // and its own announcements, re-read after the writes, agree
  await waitUntil(async () => {
    await a.rows.idle();
    return a.rows.stats.notifications >= 3;
  }, 'its own announcements');
  expect(a.privacy.of('gus').settings).toEqual(HIDDEN);
  expect(a.engine.resolveAccount(SLACK)).toBe('gus');
});

it('a lost listening connection is replaced, and what was missed meanwhile is read again', async () => {
  const a = await node();
  const b = await node({ probeMs: 200 });
  await a.engine.putUser('hal', {});
  await a.engine.putUser('ivy', {});
  await waitUntil(() => b.engine.hasUser('hal') && b.engine.hasUser('ivy'), 'B knows both');

  // Writes whose announcements nobody hears (triggers off for this session, as if B's connection
  // had been down when they committed): B stays as it was...
  const admin = await a.stores.pool.connect();
  try {
    await admin.query('SET session_replication_role = replica');
    await admin.query(
      `INSERT INTO privacy_settings (user_id, presence, last_seen, details, reciprocal, updated_at)
       VALUES ('hal', 'nobody', 'nobody', 'nobody', 0, 1)`,
    );
    await admin.query(
      "INSERT INTO accounts (platform, workspace_id, external_id, user_id, created_at) VALUES ('slack', 'T1', 'U1', 'ivy', 1)",
    );
    await admin.query(
      "INSERT INTO users (user_id, display_name, timezone, created_at, updated_at) VALUES ('jo', NULL, NULL, 1, 1)",
    );
    await admin.query("DELETE FROM users WHERE user_id = 'hal'");
    await admin.query('RESET session_replication_role');
  } finally {
    admin.release();
  }
  await a.privacy.setSettings('ivy', HIDDEN); // an announced write, as a marker
  await waitUntil(() => !sees(b, 'ivy', 'bob'), 'B follows the marker');
  expect(b.engine.hasUser('jo')).toBe(false);
  expect(b.engine.resolveAccount(SLACK)).toBeUndefined();

  // ...until its connection is lost: once listening again it re-reads everything.
  await a.stores.pool.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = $2 AND pid <> pg_backend_pid()',
    [LISTENER_APPLICATION, database.name],
  );
  await waitUntil(() => b.rows.stats.resyncs >= 1 && b.engine.hasUser('jo'), 'B re-reads everything');
  await b.rows.idle();
  expect(b.engine.resolveAccount(SLACK)).toBe('ivy');
  expect(b.engine.hasUser('hal')).toBe(false);
  expect(b.listener.reconnects).toBeGreaterThanOrEqual(1);
  // and follows announcements again afterwards
  await a.privacy.setSettings('ivy', EVERYONE);
  await waitUntil(() => sees(b, 'ivy', 'bob'), 'B follows again');
});

it('a listener cut off from PostgreSQL keeps trying, follows again once it is back, and closes at once meanwhile', async () => {
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 5432 });
  const url = new URL(database.url);
  url.host = `127.0.0.1:${proxy.port}`;
  const heard: string[] = [];
  let resumed = 0;
  const listener = await PgListener.open({
    connectionString: url.toString(),
    channel: FOLLOW_CHANNEL,
    log: silentLog,
  });
  try {
    listener.start({ notified: (p) => heard.push(p), resumed: () => (resumed += 1) });
    const stores = await openPgStores({ connectionString: database.url, clock, max: 2 });
    try {
      await stores.pool.query("SELECT pg_notify('presence_follow', 'u:one')");
      await waitUntil(() => heard.includes('u:one'), 'the first announcement');
      await proxy.cut();
      await waitUntil(() => listener.reconnects === 1, 'the loss noticed');
      await stores.pool.query("SELECT pg_notify('presence_follow', 'u:missed')"); // nobody hears it
      await proxy.restore();
      await waitUntil(() => resumed === 1, 'listening again: the caller re-reads everything');
      await stores.pool.query("SELECT pg_notify('presence_follow', 'u:two')");
      await waitUntil(() => heard.includes('u:two'), 'announcements heard again');
      expect(heard).not.toContain('u:missed');

      // cut off again: close does not wait for the attempts to reconnect
      await proxy.cut();
      await waitUntil(() => listener.reconnects === 2, 'the second loss noticed');
    } finally {
      await stores.close();
    }
  } finally {
    await listener.close();
    await proxy.close();
  }
  expect(resumed).toBe(1); // no reconnection after the close
});

/** Writes nobody hears (triggers off for that session), as if every listener had been down. */
async function unannounced(n: Node, statements: readonly string[]): Promise<void> {
  const admin = await n.stores.pool.connect();
  try {
    await admin.query('SET session_replication_role = replica');
    for (const text of statements) await admin.query(text);
    await admin.query('RESET session_replication_role');
  } finally {
    admin.release();
  }
}

it('the full re-read goes a page at a time: deletions found, announcements during it followed, own writes kept', async () => {
  let b: Node | null = null;
  let armed = false;
  let pages = 0;
  const a = await node();
  b = await node({
    pageSize: 3,
    turnSize: 2, // pages compared in slices, memory swept in slices
    reads: (real) => ({
      users: (ids) => real.users(ids),
      accounts: (refs) => real.accounts(refs),
      privacy: (ids) => real.privacy(ids),
      page: async (after, limit) => {
        if (!armed) return real.page(after, limit);
        pages += 1;
        if (pages === 2) {
          // Announced writes while the pass is under way, in the range of the page already read
          // (u00 sorts first): they must not be lost.
          const before = b!.rows.stats.notifications;
          await a.engine.putUser('u00', {});
          await a.privacy.setSettings('u02', HIDDEN);
          await waitUntil(() => b!.rows.stats.notifications >= before + 2, 'B hears them during the pass');
        }
        const page = await real.page(after, limit);
        if (pages === 3) {
          // B's own writes after this page was read: the older page must not undo them.
          await b!.privacy.setSettings('u08', HIDDEN);
          await b!.engine.linkAccount('u09', SLACK2);
        }
        return page;
      },
    }),
  });
  const ids = Array.from({ length: 10 }, (_, i) => `u${String(i + 1).padStart(2, '0')}`);
  for (const id of ids) await a.engine.putUser(id, {});
  await a.engine.linkAccount('u07', SLACK);
  await a.privacy.setSettings('u08', { ...HIDDEN, presence: 'contacts' });
  await a.privacy.setContacts('u04', ['u01', 'u03', 'u09']);
  await a.privacy.setBlocked('u06', ['u02']);
  await waitUntil(
    () =>
      b.engine.hasUser('u10') &&
      b.engine.resolveAccount(SLACK) === 'u07' &&
      !sees(b, 'u08', 'bob') &&
      b.privacy.of('u04').contacts.size === 3 &&
      b.privacy.of('u06').blocked.has('u02'),
    'B follows the set-up',
  );
  await b.rows.idle();
  await unannounced(a, [
    "DELETE FROM users WHERE user_id IN ('u05', 'u10')",
    "DELETE FROM accounts WHERE external_id = 'U1'",
    "DELETE FROM privacy_settings WHERE user_id = 'u08'",
    "DELETE FROM privacy_contacts WHERE user_id = 'u04' AND contact_id = 'u03'",
    "DELETE FROM privacy_blocks WHERE user_id = 'u06'",
    "INSERT INTO users (user_id, created_at, updated_at) VALUES ('u06b', 1, 1)",
  ]);
  const heardBefore = b.heard.length;
  armed = true;
  b.rows.resumed();
  await waitUntil(async () => {
    await b.rows.idle();
    return b.engine.hasUser('u00') && !sees(b, 'u02', 'bob');
  }, 'the announcements made during the pass followed');
  await b.rows.idle();
  expect(b.rows.stats.resyncs).toBe(1);
  expect(pages).toBe(4); // u01-03, u04-06b, u07-09, the rest (none left)
  // deleted while nobody listened: gone from memory, as the sweep after the pages found
  expect(b.engine.hasUser('u05')).toBe(false);
  expect(b.engine.hasUser('u10')).toBe(false);
  expect(b.engine.hasUser('u06b')).toBe(true);
  expect([...b.privacy.of('u04').contacts].sort()).toEqual(['u01', 'u09']);
  expect(b.privacy.of('u06').blocked.size).toBe(0);
  expect(b.engine.resolveAccount(SLACK)).toBeUndefined();
  // B's own newer writes stand, and the pass never took u08 back to an older state meanwhile
  expect(b.privacy.of('u08').settings).toEqual(HIDDEN);
  expect(b.heard.slice(heardBefore).filter((id) => id === 'u08')).toEqual(['u08']);
  expect(b.engine.resolveAccount(SLACK2)).toBe('u09');
  for (const id of ['u01', 'u03', 'u04', 'u07', 'u09']) expect(b.engine.hasUser(id)).toBe(true);
});

it("a user deleted on another node loses its viewer tokens' epoch here too", async () => {
  const a = await node();
  const b = await node();
  await a.engine.putUser('mo', {});
  await waitUntil(() => b.engine.hasUser('mo'), 'B knows mo');
  const { token } = await a.tokens.issue('mo', 600);
  expect(await b.tokens.verify(token)).toEqual({ userId: 'mo' }); // B holds mo's epoch now

  expect(await a.engine.deleteUser('mo')).toBe(true);
  await waitUntil(() => !b.engine.hasUser('mo'), 'B forgets mo');
  expect(await b.tokens.verify(token)).toBeNull();
  // The id created anew has no epoch (the deletion removed it): an epoch B still held would let
  // the old token pass again (the injected clock keeps B's cached read fresh).
  await a.engine.putUser('mo', {});
  await waitUntil(() => b.engine.hasUser('mo'), 'B knows the new mo');
  expect(await b.tokens.verify(token)).toBeNull();
  expect(await a.tokens.verify(token)).toBeNull();
});

it('a re-read that fails is tried again', async () => {
  let failures = 1;
  const a = await node();
  // B's privacy reads fail once (as a statement on a connection cut in the middle would)
  const b = await node({
    retryMs: 50,
    reads: (real) => ({
      users: (ids) => real.users(ids),
      accounts: (refs) => real.accounts(refs),
      privacy: (ids) =>
        failures-- > 0 ? Promise.reject(new Error('connection terminated')) : real.privacy(ids),
      page: (after, limit) => real.page(after, limit),
    }),
  });
  await a.engine.putUser('kim', {});
  await a.privacy.setSettings('kim', HIDDEN);
  await waitUntil(() => !sees(b, 'kim', 'bob'), 'B follows after its retry');
  expect(b.rows.stats.failures).toBe(1);
  expect(b.engine.hasUser('kim')).toBe(true);
});

/** A polling connector that only records whether it would poll each linked account. */
function pollingProbe(): Connector & { ctx: ConnectorContext | null } {
  const probe = {
    descriptor: CONNECTORS.slack,
    ctx: null as ConnectorContext | null,
    start: (ctx: ConnectorContext) => {
      probe.ctx = ctx;
      return Promise.resolve();
    },
    stop: () => Promise.resolve(),
    health: () => ({ state: 'ok' as const, lastSuccessAt: null, lastError: null, nextPollAt: null }),
  };
  return probe;
}

it('an account linked on one node is polled by exactly one node, and by none once unlinked', async () => {
  deployment = new Deployment();
  const a = await node();
  const b = await node();
  const probes: ReturnType<typeof pollingProbe>[] = [];
  for (const n of [a, b]) {
    const co = await deployment.coordination({ clock });
    const shares: PollShares = co.shares;
    n.host = new ConnectorHost(n.engine, silentLog, () => undefined, shares);
    const probe = pollingProbe();
    await n.host.start(probe);
    probes.push(probe);
  }
  const polling = (): number =>
    probes.filter((p) => p.ctx!.accounts().some((acc) => p.ctx!.polls?.(acc) === true)).length;

  await a.engine.putUser('lu', {});
  await a.engine.linkAccount('lu', SLACK);
  await waitUntil(() => polling() === 1, 'one node polls the new account');
  // every node knows it (an inbound push reaching either resolves it); still one poller
  await waitUntil(() => b.engine.resolveAccount(SLACK) === 'lu', 'B knows it');
  await a.host!.renewAllShares();
  await b.host!.renewAllShares();
  expect(polling()).toBe(1);

  await b.engine.unlinkAccount('lu', SLACK);
  await waitUntil(() => a.engine.accountsFor('slack').length === 0, 'A drops it');
  expect(polling()).toBe(0);
  for (const p of probes) expect(p.ctx!.accounts()).toEqual([]);
});
