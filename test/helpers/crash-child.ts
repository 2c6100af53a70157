/**
 * A child process for the crash test: streams presence changes into the engine and prints one
 * line per acknowledged change, until it is killed.
 */
import { PresenceEngine } from '../../src/aggregator/engine';
import { systemClock } from '../../src/core/clock';
import { Ladder } from '../../src/core/presence';
import { asyncSqlite } from '../../src/store/async-sqlite';
import { openSqliteStores } from '../../src/store/sqlite';
import { streamChanges } from './stream-changes';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: crash-child <db>');
const stores = openSqliteStores(path);
const engine = new PresenceEngine({
  clock: systemClock,
  store: asyncSqlite(stores).presence,
  ladder: new Ladder(),
});
void engine.load().then(() => streamChanges(engine, { users: 40 }));
