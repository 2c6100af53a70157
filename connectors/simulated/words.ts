/**
 * @module connectors/simulated/words
 * What each platform would say about a simulated person, in its OWN vocabulary: Teams
 * `Busy/InAMeeting`, Slack `active`/`away` with DND and custom status, Discord `dnd` with
 * `client_status`, Zoom `In_Meeting`, WhatsApp message webhooks, and device heartbeats. Pure:
 * the world decides who is doing what, and when.
 */

import type { AccountRef } from '../../src/core/ports';
import type { Activity, Status } from '../../src/core/presence';
import { toIsoSeconds } from '../../src/core/time';
import type { DiscordPresence } from '../discord/types';
import type { SlackUserState } from '../slack/types';
import type { GraphPresence } from '../teams/types';
import type { WhatsAppWebhook } from '../whatsapp/types';
import type { ZoomPresenceEventObject } from '../zoom/types';
import type { Life, SimPerson } from './world';

/** The states in which the person is at their laptop. */
const DESK: ReadonlySet<Life> = new Set(['working', 'idle', 'meeting', 'call', 'presenting', 'focus']);

/** Slack's three answers: users.getPresence, users.profile.get and dnd.teamInfo. */
export function slackWords(p: SimPerson, at: number): SlackUserState {
  const s = (text: string, emoji: string, until: number | null) => ({
    status_text: text,
    status_emoji: emoji,
    status_expiration: until === null ? 0 : Math.floor(until / 1000),
  });
  const nowS = Math.floor(at / 1000);
  switch (p.life) {
    case 'working':
    case 'mobile':
    case 'presenting':
      return { presence: { ok: true, presence: 'active' }, profile: null, dnd: null };
    case 'idle':
      return { presence: { ok: true, presence: 'away', auto_away: true }, profile: null, dnd: null };
    case 'meeting':
      return {
        presence: { ok: true, presence: 'active' },
        profile: s('In a meeting', ':spiral_calendar_pad:', p.lifeUntil),
        dnd: null,
      };
    case 'call':
      return {
        presence: { ok: true, presence: 'active' },
        profile: s('On a call', ':telephone_receiver:', null),
        dnd: null,
      };
    case 'focus':
      return {
        presence: { ok: true, presence: 'active' },
        profile: s('Heads down', ':headphones:', p.lifeUntil),
        dnd: {
          dnd_enabled: true,
          next_dnd_start_ts: nowS - 60,
          next_dnd_end_ts: Math.floor(p.lifeUntil / 1000),
        },
      };
    case 'break':
      return {
        presence: { ok: true, presence: 'away', manual_away: true },
        profile: s('Lunch', ':knife_fork_plate:', p.lifeUntil),
        dnd: null,
      };
    case 'offline':
      return { presence: { ok: true, presence: 'away' }, profile: null, dnd: null };
  }
}

/** Graph's presence (availability and activity). */
export function teamsWords(p: SimPerson): GraphPresence {
  const g = (availability: string, activity: string): GraphPresence => ({ availability, activity });
  switch (p.life) {
    case 'working':
    case 'mobile':
      return g('Available', 'Available');
    case 'idle':
      return g('AvailableIdle', 'Inactive');
    case 'meeting':
      return g('Busy', 'InAMeeting');
    case 'call':
      return g('Busy', 'InACall');
    case 'presenting':
      return g('DoNotDisturb', 'Presenting');
    case 'focus':
      return g('DoNotDisturb', 'UrgentInterruptionsOnly');
    case 'break':
      return g('BeRightBack', 'BeRightBack');
    case 'offline':
      // Signed out at the end of the day. (Offline/OffWork is "appear offline", a person's choice.)
      return g('Offline', 'Offline');
  }
}

/** A Gateway PRESENCE_UPDATE's presence. */
export function discordWords(p: SimPerson): DiscordPresence {
  const custom =
    p.life === 'focus' ? [{ type: 4, name: 'Custom Status', state: 'deep work', emoji: { name: '🎧' } }] : [];
  switch (p.life) {
    case 'working':
    case 'meeting':
    case 'call':
    case 'presenting':
      return { status: 'online', client_status: { desktop: 'online' }, activities: [] };
    case 'idle':
      return { status: 'idle', client_status: { desktop: 'idle' }, activities: [] };
    case 'focus':
      return { status: 'dnd', client_status: { desktop: 'dnd', mobile: 'dnd' }, activities: custom };
    case 'break':
      return { status: 'idle', client_status: { mobile: 'idle' }, activities: [] };
    case 'mobile':
      return {
        status: 'online',
        client_status: { mobile: 'online' },
        activities: [{ type: 2, name: 'Spotify' }],
      };
    case 'offline':
      return { status: 'offline', client_status: {}, activities: [] };
  }
}

/** The object of a `user.presence_status_updated` event. */
export function zoomWords(p: SimPerson, account: AccountRef, at: number): ZoomPresenceEventObject {
  const status: Record<Life, string> = {
    working: 'Available',
    idle: 'Away',
    meeting: 'In_Meeting',
    call: 'On_Phone_Call',
    presenting: 'Presenting',
    focus: 'Do_Not_Disturb',
    break: 'Away',
    mobile: 'Mobile_signed_in',
    offline: 'Offline',
  };
  const app =
    p.life === 'mobile'
      ? { type: 'mobile', presence_status: 'Available' }
      : { type: 'desktop', presence_status: status[p.life] };
  return {
    id: account.externalId,
    email: `${p.userId}@example.com`,
    presence_status: status[p.life],
    date_time: toIsoSeconds(at),
    app,
  };
}

/** A messages webhook: the person's message `seq`, or (`read`) their read receipt of ours. */
export function whatsappWords(account: AccountRef, at: number, seq: number, read: boolean): WhatsAppWebhook {
  const ts = String(Math.floor(at / 1000));
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '102290129340398',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550783881', phone_number_id: '106540352242922' },
              ...(read
                ? {
                    statuses: [
                      {
                        id: `wamid.SIM${seq}`,
                        status: 'read',
                        timestamp: ts,
                        recipient_id: account.externalId,
                      },
                    ],
                  }
                : {
                    contacts: [{ wa_id: account.externalId }],
                    messages: [
                      {
                        from: account.externalId,
                        id: `wamid.SIM${seq}`,
                        timestamp: ts,
                        type: 'text',
                      },
                    ],
                  }),
            },
          },
        ],
      },
    ],
  };
}

/** What the person's laptop or phone sends as a heartbeat, or null when it sends nothing. */
export function heartbeatWords(
  p: SimPerson,
  device: 'laptop' | 'phone',
): { status: Status; activity: Activity | null } | null {
  if (device === 'laptop') {
    if (!DESK.has(p.life)) return null; // a closed laptop sends nothing, and its entry expires
    switch (p.life) {
      case 'idle':
        return { status: 'idle', activity: null };
      case 'meeting':
        return { status: 'busy', activity: 'in_meeting' };
      case 'call':
        return { status: 'busy', activity: 'in_call' };
      case 'presenting':
        return { status: 'busy', activity: 'presenting' };
      case 'focus':
        return { status: 'busy', activity: 'focus' };
      default:
        return { status: 'online', activity: null };
    }
  }
  if (p.life === 'mobile') return { status: 'online', activity: null };
  if (p.life === 'break') return { status: 'idle', activity: null };
  return null;
}
