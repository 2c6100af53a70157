/**
 * A child process for the crash test: streams presence changes into the engine and prints one
 * line per acknowledged change, until it is killed.
 */
import { PresenceEngine } from '../../src/aggregator/engine';
import { systemClock } from '../../src/core/clock';
import { Ladder } from '../../src/core/presence';
import { migrate, openDb } from '../../src/store/db';
import { SqlitePresenceStore } from '../../src/store/presence-store';
import { streamChanges } from './stream-changes';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: crash-child <db>');
const db = openDb(path);
migrate(db);
const engine = new PresenceEngine({
  clock: systemClock,
  store: new SqlitePresenceStore(db),
  ladder: new Ladder(),
});
engine.load();
void streamChanges(engine, { users: 40 });
