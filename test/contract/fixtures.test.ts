/**
 * The contract suite: every fixture of every connector (connectors/<platform>/fixtures/) is
 * replayed through the code that consumes that payload — its mapper, its inbound handler's
 * verify/parse/handle, or the protocol helper that reads it — and the result is checked against
 * values written here, per fixture. A fixture this file has no case for fails the suite, and so
 * does a case whose fixture is gone: a payload kept as evidence must be evidence of something.
 */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

import { GatewayIntentBits, GatewayOpcodes } from 'discord.js';

import { IdentifyGate } from '../../connectors/discord/identify-gate';
import { discord } from '../../connectors/discord/descriptor';
import { toDiscordPresence } from '../../connectors/discord/map';
import type { DiscordPresence } from '../../connectors/discord/types';
import type {
  InboundEndpoint,
  InboundHandler,
  InboundReply,
  InboundRequest,
  PresencePush,
} from '../../connectors/inbound';
import { checkSlackSignature } from '../../connectors/slack/client';
import { slackInbound, type SlackDelivery } from '../../connectors/slack/inbound';
import { dndEndsAt, toSlackPresence, toSlackPushedPresence } from '../../connectors/slack/map';
import {
  SlackUserChangeEventSchema,
  type SlackDndStatus,
  type SlackEventCallback,
} from '../../connectors/slack/types';
import { notificationUserId } from '../../connectors/teams/ids';
import { teamsInbound, type TeamsPush } from '../../connectors/teams/inbound';
import { toTeamsPresence } from '../../connectors/teams/map';
import { presenceResource } from '../../connectors/teams/subscription-set';
import type { GraphPresence, GraphSubscriptionRequest } from '../../connectors/teams/types';
import { whatsappInbound } from '../../connectors/whatsapp/inbound';
import { toWhatsAppSightings } from '../../connectors/whatsapp/map';
import type { WhatsAppWebhook } from '../../connectors/whatsapp/types';
import { zoomInbound } from '../../connectors/zoom/inbound';
import { toZoomEventPresence } from '../../connectors/zoom/map';
import { FakeClock } from '../../src/core/clock';
import { hmacHex } from '../../src/core/hmac';
import { silentLog } from '../../src/core/log';
import { DEFAULT_DECAY } from '../../src/core/signals';

const ROOT = join(__dirname, '..', '..');
const CONNECTORS_DIR = join(ROOT, 'connectors');

/** Every fixture file, as `<platform>/fixtures/<name>`. */
function fixtureFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(CONNECTORS_DIR, path).split('\\').join('/'));
    }
  };
  for (const platform of readdirSync(CONNECTORS_DIR)) {
    const dir = join(CONNECTORS_DIR, platform, 'fixtures');
    if (statSync(join(CONNECTORS_DIR, platform)).isDirectory() && existsDir(dir)) walk(dir);
  }
  return out.sort();
}

function existsDir(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

const text = (file: string): string => readFileSync(join(CONNECTORS_DIR, file), 'utf8');
const json = (file: string): any => JSON.parse(text(file));

// ------------------------------------------------------------ inbound handlers, without HTTP

function request(raw: string, headers: Record<string, string>, body?: unknown): InboundRequest {
  return { headers, query: {}, raw: Buffer.from(raw), body, log: silentLog, id: 'req-contract' };
}

function endpoint(handler: InboundHandler, method: 'GET' | 'POST', path: string): InboundEndpoint {
  const found = handler.endpoints.find((e) => e.method === method && e.path === path);
  if (found === undefined) throw new Error(`no ${method} ${path}`);
  return found;
}

/** verify, parse and handle, as the route layer calls them. */
async function replay(
  e: InboundEndpoint,
  req: InboundRequest,
): Promise<{ content: unknown; reply: InboundReply }> {
  e.verify(req);
  const content: unknown = e.parse(req);
  return { content, reply: await e.handle(content, req) };
}

/** A presence port that records what it is given; `linked` says whether anyone linked the accounts. */
function presencePort(linked = true): { pushes: PresencePush[]; push(p: PresencePush): Promise<boolean> } {
  const pushes: PresencePush[] = [];
  return {
    pushes,
    push: (p) => {
      pushes.push(p);
      return Promise.resolve(linked);
    },
  };
}

const SLACK_SECRET = 'contract-slack-signing-secret';
const SLACK_NOW_S = 1_734_567_900;

function slackSigned(body: string, contentType = 'application/json'): InboundRequest {
  const ts = String(SLACK_NOW_S);
  return request(body, {
    'content-type': contentType,
    'x-slack-request-timestamp': ts,
    'x-slack-signature': `v0=${hmacHex(SLACK_SECRET, `v0:${ts}:${body}`)}`,
  });
}

function slackHandler(onEvent: (e: SlackEventCallback) => void = () => undefined): InboundHandler {
  return slackInbound({
    signingSecret: SLACK_SECRET,
    clock: new FakeClock(SLACK_NOW_S * 1000),
    log: silentLog,
    port: {
      push: (e) => {
        onEvent(e);
        return Promise.resolve();
      },
    },
  });
}

const ZOOM_SECRET = 'contract-zoom-secret-token';
const ZOOM_NOW = 1_626_230_700_000;

function zoomSigned(body: string): InboundRequest {
  const ts = String(ZOOM_NOW);
  return request(body, {
    'content-type': 'application/json',
    'x-zm-request-timestamp': ts,
    'x-zm-signature': `v0=${hmacHex(ZOOM_SECRET, `v0:${ts}:${body}`)}`,
  });
}

function zoomHandler(port = presencePort()): InboundHandler {
  return zoomInbound({
    secretToken: ZOOM_SECRET,
    port,
    clock: new FakeClock(ZOOM_NOW),
    log: silentLog,
    ttlMs: 600_000,
  });
}

function teamsHandler(clientState: string, pushes: TeamsPush[]): InboundHandler {
  return teamsInbound({
    verifyClientState: (v) => v === clientState,
    port: {
      push: (p) => {
        pushes.push(p);
        return Promise.resolve();
      },
    },
  });
}

// ------------------------------------------------------------------------------ the cases

const CASES: Record<string, () => void | Promise<void>> = {
  // ---- Discord: presence through the mapper; gateway frames are spoken by discord.js, so their
  // cases check the protocol facts the connector relies on.
  'discord/fixtures/discord-update-presence-op3.json': () => {
    const frame = json('discord/fixtures/discord-update-presence-op3.json');
    expect(frame.op).toBe(GatewayOpcodes.PresenceUpdate);
    const presence: DiscordPresence = { status: frame.d.status, activities: frame.d.activities };
    expect(toDiscordPresence(presence, 0)).toEqual({
      state: {
        status: 'online',
        activity: null,
        source: 'app',
        customStatus: null,
        // A game is kept in raw, never turned into a custom status.
        raw: {
          status: 'online',
          client_status: {},
          activities: [{ type: 0, name: 'Save the Oxford Comma' }],
        },
        label: 'online',
      },
      devices: {},
    });
  },
  'discord/fixtures/discord-hello.json': () => {
    const frame = json('discord/fixtures/discord-hello.json');
    expect(frame).toEqual({ op: GatewayOpcodes.Hello, d: { heartbeat_interval: 45_000 } });
  },
  'discord/fixtures/discord-heartbeat-ack.json': () => {
    expect(json('discord/fixtures/discord-heartbeat-ack.json')).toEqual({ op: GatewayOpcodes.HeartbeatAck });
  },
  'discord/fixtures/discord-invalid-session.json': () => {
    // d: false = the session cannot be resumed: a new IDENTIFY, which the gate spaces out.
    expect(json('discord/fixtures/discord-invalid-session.json')).toEqual({
      op: GatewayOpcodes.InvalidSession,
      d: false,
    });
  },
  'discord/fixtures/discord-identify-minimal.json': () => {
    const frame = json('discord/fixtures/discord-identify-minimal.json');
    expect(frame.op).toBe(GatewayOpcodes.Identify);
    // The documented example asks for Guilds and GuildMessages; the connector asks for the
    // intents its descriptor names, presences and members included.
    expect(frame.d.intents).toBe(GatewayIntentBits.Guilds | GatewayIntentBits.GuildMessages);
    const ours = discord.auth.scopes.reduce(
      (bits, name) => bits | GatewayIntentBits[name as keyof typeof GatewayIntentBits],
      0,
    );
    expect(ours).toBe(0b1_0000_0011);
  },
  'discord/fixtures/discord-get-gateway-bot-response.json': () => {
    const limit = json('discord/fixtures/discord-get-gateway-bot-response.json').session_start_limit;
    expect(limit).toEqual({ total: 1000, remaining: 999, reset_after: 14_400_000, max_concurrency: 1 });
    // The gate stays under the daily total and spaces IDENTIFYs 5 s apart (max_concurrency 1).
    const gate = new IdentifyGate();
    expect(gate.dailyCap).toBeLessThan(limit.total);
    expect(gate.reserve(0)).toBe(0);
    expect(gate.reserve(0)).toBe(5000 / limit.max_concurrency);
  },

  // ---- Slack
  'slack/fixtures/slack-users-getPresence-self.json': () => {
    const presence = json('slack/fixtures/slack-users-getPresence-self.json');
    expect(toSlackPresence({ presence }, 0)).toEqual({
      state: {
        status: 'online',
        activity: null,
        customStatus: null,
        source: 'app',
        raw: 'active',
        label: 'active',
      },
      devices: null,
    });
  },
  'slack/fixtures/slack-presence-change-rtm-batch.json': () => {
    // RTM is closed to modern apps; its vocabulary is users.getPresence's, so it maps the same.
    const batch = json('slack/fixtures/slack-presence-change-rtm-batch.json');
    expect(batch.users).toHaveLength(2);
    expect(toSlackPresence({ presence: { ok: true, presence: batch.presence } }, 0)).toEqual({
      state: {
        status: 'away',
        activity: null,
        customStatus: null,
        source: 'app',
        raw: 'away',
        label: 'away',
      },
      devices: null,
    });
  },
  'slack/fixtures/slack-dnd-teamInfo.json': () => {
    const { users } = json('slack/fixtures/slack-dnd-teamInfo.json') as {
      users: Record<string, SlackDndStatus>;
    };
    const now = 1_450_400_000_000; // inside U023BECGF's window
    const active = { ok: true, presence: 'active' };
    expect(dndEndsAt(users.U023BECGF, now)).toBe(1_450_423_800_000);
    expect(toSlackPresence({ presence: active, dnd: users.U023BECGF }, now)).toEqual({
      state: {
        status: 'busy',
        activity: 'do_not_disturb',
        customStatus: null,
        source: 'manual',
        raw: { presence: 'active', dnd_enabled: true },
        label: 'active + DND',
      },
      devices: null,
    });
    expect(dndEndsAt(users.W058CJVAA, now)).toBeUndefined();
    expect(toSlackPresence({ presence: active, dnd: users.W058CJVAA }, now)?.state).toMatchObject({
      status: 'online',
      label: 'active',
    });
  },
  'slack/fixtures/slack-signing-test-vector.json': async () => {
    const v = json('slack/fixtures/slack-signing-test-vector.json');
    const nowMs = Number(v.x_slack_request_timestamp) * 1000 + 30_000;
    const input = {
      signingSecret: v.signing_secret,
      rawBody: v.body,
      timestamp: v.x_slack_request_timestamp,
      signature: v.x_slack_signature,
      nowMs,
    };
    expect(checkSlackSignature(input)).toBe('ok');
    expect(checkSlackSignature({ ...input, rawBody: `${v.body}&x=1` })).toBe('mismatch');
    // Through the handler: a signed slash-command form is acknowledged, nothing pushed.
    const pushed: unknown[] = [];
    const handler = slackInbound({
      signingSecret: v.signing_secret,
      clock: new FakeClock(nowMs),
      log: silentLog,
      port: { push: (e) => Promise.resolve(void pushed.push(e)) },
    });
    const req = request(v.body, {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': v.x_slack_request_timestamp,
      'x-slack-signature': v.x_slack_signature,
    });
    const { content, reply } = await replay(endpoint(handler, 'POST', '/v1/inbound/slack'), req);
    expect(content).toEqual({ kind: 'other' } satisfies SlackDelivery);
    expect(reply).toEqual({ status: 200, body: { ok: true } });
    expect(pushed).toEqual([]);
  },
  'slack/fixtures/slack-url-verification.json': async () => {
    const body = text('slack/fixtures/slack-url-verification.json');
    const { content, reply } = await replay(
      endpoint(slackHandler(), 'POST', '/v1/inbound/slack'),
      slackSigned(body),
    );
    expect(content).toEqual({
      kind: 'url_verification',
      challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P',
    } satisfies SlackDelivery);
    expect(reply).toEqual({
      status: 200,
      body: { challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P' },
    });
  },
  'slack/fixtures/slack-user-status-changed-event.json': async () => {
    const body = text('slack/fixtures/slack-user-status-changed-event.json');
    let pushed!: (e: SlackEventCallback) => void;
    const got = new Promise<SlackEventCallback>((resolve) => (pushed = resolve));
    const { content, reply } = await replay(
      endpoint(slackHandler(pushed), 'POST', '/v1/inbound/slack'),
      slackSigned(body),
    );
    expect(content).toMatchObject({
      kind: 'event',
      envelope: { event_id: 'Ev0123ABC456', team_id: 'T123ABC456' },
    });
    expect(reply).toEqual({ status: 200, body: { ok: true } });
    // Pushed after the answer, as received.
    const envelope = await got;
    expect(envelope.event.type).toBe('user_status_changed');
    // What the connector makes of it without polling: the custom status, carried by the weakest report.
    const event = SlackUserChangeEventSchema.parse(envelope.event);
    expect(event.user.id).toBe('U123ABC456');
    const at = 1_734_567_890_000;
    expect(toSlackPushedPresence({ profile: event.user.profile }, at, 3_600_000)).toEqual({
      mapped: {
        state: {
          status: 'offline',
          activity: null,
          customStatus: { text: 'Commuting to office!', emoji: ':docs-team-in-transit:', expiresAt: null },
          source: 'inferred',
          raw: { status_text: 'Commuting to office!', status_emoji: ':docs-team-in-transit:' },
          label: 'custom status only (presence unknown)',
        },
        devices: null,
      },
      until: at + 3_600_000,
    });
  },

  // ---- Microsoft Teams
  'teams/fixtures/graph-getPresencesByUserId-response.json': () => {
    const { value } = json('teams/fixtures/graph-getPresencesByUserId-response.json') as {
      value: GraphPresence[];
    };
    expect(value.map((p) => [p.id, toTeamsPresence(p, 0)])).toEqual([
      [
        'fa8bf3dc-eca7-46b7-bad1-db199b62afc3',
        {
          state: {
            status: 'busy',
            activity: 'in_meeting',
            customStatus: null,
            source: 'app',
            raw: { availability: 'Busy', activity: 'InAMeeting' },
            label: 'Busy/InAMeeting',
          },
          devices: null,
        },
      ],
      [
        '66825e03-7ef5-42da-9069-724602c31f6b',
        {
          state: {
            status: 'away',
            activity: null,
            customStatus: null,
            source: 'app',
            raw: { availability: 'Away', activity: 'Away' },
            label: 'Away/Away',
          },
          devices: null,
        },
      ],
    ]);
  },
  'teams/fixtures/graph-presence-get-response.json': () => {
    expect(toTeamsPresence(json('teams/fixtures/graph-presence-get-response.json'), 0)).toEqual({
      state: {
        status: 'busy',
        activity: 'presenting',
        customStatus: null,
        source: 'app',
        raw: { availability: 'DoNotDisturb', activity: 'Presenting' },
        label: 'DoNotDisturb/Presenting',
      },
      devices: null,
    });
  },
  'teams/fixtures/graph-presence-decrypted-resource-data.json': () => {
    // The documented template's placeholders are no availability: never guessed into a status.
    expect(toTeamsPresence(json('teams/fixtures/graph-presence-decrypted-resource-data.json'), 0)).toBeNull();
  },
  'teams/fixtures/graph-presence-notification-basic.json': async () => {
    const pushes: TeamsPush[] = [];
    const collection = json('teams/fixtures/graph-presence-notification-basic.json');
    const e = endpoint(teamsHandler('PresenceTesting', pushes), 'POST', '/v1/inbound/teams');
    const { content, reply } = await replay(
      e,
      request('', { 'content-type': 'application/json' }, collection),
    );
    expect(reply).toEqual({ status: 202 });
    expect(content).toEqual(collection.value);
    expect(pushes).toEqual([{ kind: 'change', items: collection.value }]);
    // '{userId}' is the template's placeholder, no AAD object id: the item names no user.
    expect(notificationUserId(collection.value[0])).toBeNull();
    // With another clientState, nothing is taken.
    const other = endpoint(teamsHandler('another-state', []), 'POST', '/v1/inbound/teams');
    expect(() => other.verify(request('', {}, collection))).toThrow(/expected clientState/);
  },
  'teams/fixtures/graph-lifecycle-reauthorizationRequired.json': async () => {
    const pushes: TeamsPush[] = [];
    const collection = json('teams/fixtures/graph-lifecycle-reauthorizationRequired.json');
    const e = endpoint(teamsHandler('{secret client state}', pushes), 'POST', '/v1/inbound/teams/lifecycle');
    const { reply } = await replay(e, request('', { 'content-type': 'application/json' }, collection));
    expect(reply).toEqual({ status: 202 });
    expect(pushes).toEqual([
      {
        kind: 'lifecycle',
        items: [
          {
            lifecycleEvent: 'reauthorizationRequired',
            subscriptionId: 'e3898f08-5cd0-4a6a-80fc-6addbfb73b7b',
            subscriptionExpirationDateTime: '2019-09-18T00:52:45.9696658+00:00',
            clientState: '{secret client state}',
            tenantId: '84bd8158-6d4d-4958-8b9f-9d6445542f95',
          },
        ],
      },
    ]);
  },
  'teams/fixtures/graph-presence-subscription-request.json': () => {
    const documented = json('teams/fixtures/graph-presence-subscription-request.json');
    // Every field the connector sends is one the documented request has, with the same change type.
    const ours: readonly (keyof GraphSubscriptionRequest)[] = [
      'changeType',
      'notificationUrl',
      'lifecycleNotificationUrl',
      'resource',
      'expirationDateTime',
      'clientState',
    ];
    for (const key of ours) expect(Object.keys(documented)).toContain(key);
    expect(documented.changeType).toBe('updated');
    // The resource is the documented bulk filter (the docs elide the tail of the id list).
    expect(presenceResource(['{id}', '{id}'])).toBe(
      "/communications/presences?$filter=id in ('{id}', '{id}')",
    );
    expect(documented.resource.startsWith(presenceResource(['{id}', '{id}']).slice(0, -1))).toBe(true);
  },

  // ---- WhatsApp
  'whatsapp/fixtures/whatsapp-messages-text.json': async () => {
    const body = text('whatsapp/fixtures/whatsapp-messages-text.json');
    const decay = DEFAULT_DECAY;
    const expected = {
      state: {
        status: 'online',
        activity: null,
        customStatus: null,
        source: 'inferred',
        raw: { kind: 'message' },
        label: 'a message',
      },
      devices: null,
      decay: [
        { status: 'online', untilMs: 120_000 },
        { status: 'idle', untilMs: 600_000 },
        { status: 'away', untilMs: 3_600_000 },
      ],
      at: 1_749_416_383_000,
    };
    expect(toWhatsAppSightings(JSON.parse(body) as WhatsAppWebhook, decay)).toEqual([
      {
        ids: ['16505551234'],
        key: 'message:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=',
        presence: expected,
      },
    ]);
    // Through the handler: signed, mapped, pushed for the sender's number.
    const port = presencePort();
    const handler = whatsappInbound({ appSecret: 'contract-app-secret', port, decay, log: silentLog });
    const req = request(body, {
      'content-type': 'application/json',
      'x-hub-signature-256': `sha256=${hmacHex('contract-app-secret', body)}`,
    });
    const { reply } = await replay(endpoint(handler, 'POST', '/v1/inbound/whatsapp'), req);
    expect(reply).toEqual({
      status: 200,
      body: { received: true, applied: 1, ignored: 0, duplicates: 0, malformed: 0 },
    });
    expect(port.pushes).toEqual([
      {
        accounts: [{ platform: 'whatsapp', workspaceId: '', externalId: '16505551234' }],
        presence: expected,
        ttlMs: 0,
      },
    ]);
  },

  // ---- Zoom
  'zoom/fixtures/zoom-user-presence-status-updated.json': async () => {
    const body = text('zoom/fixtures/zoom-user-presence-status-updated.json');
    const expected = {
      state: {
        status: 'away',
        activity: null,
        source: 'app',
        customStatus: null,
        raw: 'Away',
        label: 'Away',
      },
      devices: {
        mobile: {
          status: 'offline',
          activity: null,
          source: 'app',
          customStatus: null,
          raw: 'Offline',
          label: 'mobile Offline',
        },
      },
      at: Date.parse('2019-11-26T20:13:57Z'),
    };
    expect(toZoomEventPresence(JSON.parse(body).payload.object, 0)).toEqual(expected);
    const port = presencePort();
    const { reply } = await replay(endpoint(zoomHandler(port), 'POST', '/v1/inbound/zoom'), zoomSigned(body));
    expect(reply).toEqual({ status: 200, body: { received: true, applied: true } });
    // Linked by Zoom user id, or else by email.
    expect(port.pushes).toEqual([
      {
        accounts: [
          { platform: 'zoom', workspaceId: '', externalId: 'abcD3ojfdbjfg' },
          { platform: 'zoom', workspaceId: '', externalId: 'jchill@example.com' },
        ],
        presence: expected,
        ttlMs: 600_000,
      },
    ]);
  },
  'zoom/fixtures/zoom-webhook-meeting-started-example.json': async () => {
    const port = presencePort();
    const body = text('zoom/fixtures/zoom-webhook-meeting-started-example.json');
    const { content, reply } = await replay(
      endpoint(zoomHandler(port), 'POST', '/v1/inbound/zoom'),
      zoomSigned(body),
    );
    expect(content).toEqual({ kind: 'other' });
    expect(reply).toEqual({ status: 200, body: { received: true, applied: false } });
    expect(port.pushes).toEqual([]);
  },
  'zoom/fixtures/zoom-url-validation-request.json': async () => {
    const body = text('zoom/fixtures/zoom-url-validation-request.json');
    const { reply } = await replay(endpoint(zoomHandler(), 'POST', '/v1/inbound/zoom'), zoomSigned(body));
    expect(reply).toEqual({
      status: 200,
      body: {
        plainToken: 'qgg8vlvZRS6UYooatFL8Aw',
        encryptedToken: hmacHex(ZOOM_SECRET, 'qgg8vlvZRS6UYooatFL8Aw'),
      },
    });
  },
  'zoom/fixtures/zoom-url-validation-response.json': async () => {
    // The documented answer to the request above (under Zoom's own secret): ours has its shape.
    const documented = json('zoom/fixtures/zoom-url-validation-response.json');
    const request = json('zoom/fixtures/zoom-url-validation-request.json');
    const { reply } = await replay(
      endpoint(zoomHandler(), 'POST', '/v1/inbound/zoom'),
      zoomSigned(JSON.stringify(request)),
    );
    const ours = reply.body as Record<string, string>;
    expect(Object.keys(ours).sort()).toEqual(Object.keys(documented).sort());
    expect(ours.plainToken).toBe(documented.plainToken);
    expect(ours.encryptedToken).toMatch(/^[0-9a-f]{64}$/);
    expect(documented.encryptedToken).toMatch(/^[0-9a-f]{64}$/);
  },
};

describe('connector fixtures', () => {
  it('each has a case here, and each case its fixture', () => {
    const files = fixtureFiles();
    expect(files.length).toBeGreaterThan(0);
    const covered = Object.keys(CASES).sort();
    expect({
      unused: files.filter((f) => !covered.includes(f)),
      missing: covered.filter((c) => !files.includes(c)),
    }).toEqual({
      unused: [],
      missing: [],
    });
  });

  it.each(Object.keys(CASES).sort())('%s', async (file) => {
    await CASES[file]!();
  });
});
