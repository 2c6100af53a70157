/**
 * @module core/connector
 * What a platform connector is. A connector declares its platform, how it learns presence
 * (poll, push or gateway), what auth it needs and what it can tell; its pure mapper turns the
 * platform's own payloads into normalized states; at run time it reports those states for
 * accounts through the context it is given and says how healthy it is.
 */

import type { Clock } from './clock';
import type { Log } from './log';
import type { AccountRef } from './ports';
import type { DecayStep, NormalizedState, RealPlatform } from './presence';

export type ConnectorMode = 'poll' | 'push' | 'gateway';

export interface AuthSpec {
  /** oauth2: a person or workspace grants access; bot_token: one token for the app; none: no auth. */
  readonly kind: 'oauth2' | 'bot_token' | 'app_secret' | 'none';
  /** Scopes or intents the connector needs for presence. */
  readonly scopes: readonly string[];
}

export interface Capabilities {
  /** Can it tell whether someone is online at all? (WhatsApp infers it, LinkedIn cannot.) */
  readonly presence: 'native' | 'inferred' | 'none';
  readonly activities: boolean;
  readonly customStatus: boolean;
  readonly devices: boolean;
  /** Can it tell states the person set by hand (manual tier)? */
  readonly manualStates: boolean;
  /** Does linking it establish who the person is (OpenID Connect)? */
  readonly identity: boolean;
}

export interface ConnectorDescriptor {
  readonly platform: RealPlatform;
  readonly displayName: string;
  readonly mode: ConnectorMode;
  readonly auth: AuthSpec;
  readonly capabilities: Capabilities;
  /** How long one report counts when the connector says nothing else. */
  readonly defaultTtlMs: number;
  /** One sentence an operator reads in `GET /v1/connectors`. */
  readonly notes: string;
}

/** A mapper's answer: the platform-level state and, where the platform reports them, devices. */
export interface MappedPresence {
  readonly state: NormalizedState;
  readonly devices: Readonly<Record<string, NormalizedState>> | null;
  /** For inferred states: how they fade (docs/api.md, signals). */
  readonly decay?: readonly DecayStep[];
  /** When the platform saw it, if the payload says. */
  readonly at?: number;
}

/**
 * A pure mapping from one raw payload. It returns null for a value it does not know, which must
 * never be guessed into a status; the caller logs it once and keeps the previous state.
 */
export type Mapper<Raw> = (raw: Raw, now: number) => MappedPresence | null;

export interface ConnectorHealth {
  /** pending: running, not yet succeeded once (what `GET /v1/connectors` says instead of ok). */
  readonly state: 'ok' | 'pending' | 'degraded' | 'down' | 'off';
  readonly lastSuccessAt: number | null;
  readonly lastError: string | null;
  readonly nextPollAt: number | null;
}

export interface ConnectorReport {
  readonly account: AccountRef;
  readonly presence: MappedPresence;
  readonly ttlMs?: number;
}

export interface ConnectorContext {
  readonly clock: Clock;
  readonly log: Log;
  /** Reports for a linked account; resolves to false when no user has linked that account. */
  report(report: ConnectorReport): Promise<boolean>;
  /** Accounts of this platform that users have linked. */
  accounts(): readonly AccountRef[];
  /**
   * Whether this node polls the account now: it holds the account's polling share (several
   * nodes share the polling; a push is taken for any account, whichever node it reaches).
   * Absent: every account.
   */
  polls?(account: AccountRef): boolean;
}

export interface Connector {
  readonly descriptor: ConnectorDescriptor;
  start(ctx: ConnectorContext): Promise<void>;
  stop(): Promise<void>;
  health(): ConnectorHealth;
}
