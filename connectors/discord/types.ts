/**
 * @module connectors/discord/types
 * Discord gateway presence (https://discord.com/developers/docs/events/gateway-events#presence-update).
 */

export type DiscordStatus = 'online' | 'idle' | 'dnd' | 'offline' | 'invisible';

export interface DiscordActivity {
  readonly name: string;
  /** 0 Playing, 1 Streaming, 2 Listening, 3 Watching, 4 Custom, 5 Competing. */
  readonly type: number;
  readonly state?: string | null;
  readonly emoji?: { readonly name?: string | null; readonly id?: string | null } | null;
}

export interface DiscordClientStatus {
  readonly desktop?: DiscordStatus;
  readonly mobile?: DiscordStatus;
  readonly web?: DiscordStatus;
  readonly vr?: DiscordStatus;
}

/** The fields of PRESENCE_UPDATE (and GUILD_CREATE presences) the mapping reads. */
export interface DiscordPresence {
  /** A DiscordStatus; typed as string because the gateway does not validate it. */
  readonly status: string;
  readonly client_status?: DiscordClientStatus;
  readonly activities?: readonly DiscordActivity[];
}
