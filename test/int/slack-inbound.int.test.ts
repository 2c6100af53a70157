/**
 * `POST /v1/inbound/slack` in the running service: the v0 signature (a one-defect table, and
 * Slack's own test vector through the route), `url_verification`, acknowledging before the work
 * is done, dropping retried deliveries, and `dnd_updated_user` / `user_status_changed` moving a
 * linked user's presence. Refused requests get the contract's 401 and change nothing.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';

import { slackInboundRoutes, type SlackInboundDeps } from '../../src/http/routes/inbound';
import { FakeClock, systemClock, type Clock } from '../../src/core/clock';
import { errorHandler } from '../../src/http/errors';
import { SIGNING_SECRET, slackHarness, slackSign, TEAM, type SlackHarness } from '../helpers/fake-slack';
import { expectError } from '../helpers/http';

const fixture = (name: string): any =>
  JSON.parse(readFileSync(join(__dirname, '../../connectors/slack/fixtures', name), 'utf8'));

const MIN = 60_000;

describe('Slack inbound route', () => {
  let h: SlackHarness;
  let handled: string[];

  beforeEach(async () => {
    h = await slackHarness({ profileIntervalMs: 0 });
    handled = [];
    const original = h.connector.handleEvent.bind(h.connector);
    h.connector.handleEvent = (e) => {
      handled.push(e.event_id ?? '?');
      return original(e);
    };
    h.fake.user('U0ALICE');
    await h.link('alice', 'U0ALICE');
    await h.connector.pollDue();
  });
  afterEach(async () => {
    await h.close();
  });

  const nowS = (): number => Math.floor(h.clock.now() / 1000);

  const dndEvent = (eventId = 'Ev0DND1', start = nowS() - 60, end = nowS() + 3600): object => ({
    token: 'unused',
    team_id: TEAM,
    api_app_id: 'A0TEST',
    type: 'event_callback',
    event_id: eventId,
    event_time: nowS(),
    event: {
      type: 'dnd_updated_user',
      user: 'U0ALICE',
      dnd_status: { dnd_enabled: true, next_dnd_start_ts: start, next_dnd_end_ts: end },
      event_ts: `${nowS()}.000100`,
    },
  });

  const statusEvent = (text: string, emoji: string, expiration: number, eventId = 'Ev0STATUS1'): object => {
    const e = fixture('slack-user-status-changed-event.json');
    e.team_id = TEAM;
    e.event_id = eventId;
    e.event.user.id = 'U0ALICE';
    e.event.user.team_id = TEAM;
    Object.assign(e.event.user.profile, {
      status_text: text,
      status_emoji: emoji,
      status_expiration: expiration,
    });
    return e;
  };

  describe('signature', () => {
    const body = (): string => JSON.stringify(dndEvent());
    /** [name, header overrides, bytes sent instead of the signed ones] */
    const cases: [string, () => Record<string, string | undefined>, (() => string) | null][] = [
      ['no X-Slack-Signature', () => ({ 'x-slack-signature': undefined }), null],
      ['no X-Slack-Request-Timestamp', () => ({ 'x-slack-request-timestamp': undefined }), null],
      [
        'signed with another secret',
        () => ({ 'x-slack-signature': slackSign('not-the-secret', nowS(), body()) }),
        null,
      ],
      ['tampered body', () => ({}), () => body().replace('"dnd_enabled":true', '"dnd_enabled":false')],
      [
        'timestamp older than 5 minutes',
        () => {
          const ts = nowS() - 301;
          return {
            'x-slack-request-timestamp': String(ts),
            'x-slack-signature': slackSign(SIGNING_SECRET, ts, body()),
          };
        },
        null,
      ],
      [
        'timestamp more than 5 minutes ahead',
        () => {
          const ts = nowS() + 301;
          return {
            'x-slack-request-timestamp': String(ts),
            'x-slack-signature': slackSign(SIGNING_SECRET, ts, body()),
          };
        },
        null,
      ],
      [
        'a v1 signature',
        () => ({ 'x-slack-signature': slackSign(SIGNING_SECRET, nowS(), body()).replace('v0=', 'v1=') }),
        null,
      ],
    ];

    it.each(cases)('refuses %s with 401 and changes nothing', async (_name, headers, tamper) => {
      const before = await h.presence('alice');
      const changes = h.changes.length;
      const signed = body();
      const res = await h.inbound(tamper === null ? signed : tamper(), {
        headers: headers(),
        signBody: signed,
      });
      expectError(res, 401, 'unauthorized');
      await h.settle();
      expect(handled).toEqual([]);
      expect(h.changes.length).toBe(changes);
      expect(await h.presence('alice')).toEqual(before);
    });

    it('accepts the same request correctly signed', async () => {
      const res = await h.inbound(body());
      expect(res.statusCode).toBe(200);
      await h.settle();
      expect(handled).toEqual(['Ev0DND1']);
    });

    it('refuses an unsigned body that is not even JSON with 401, a signed one with 400', async () => {
      const unsigned = await h.svc.app.inject({
        method: 'POST',
        url: '/v1/inbound/slack',
        headers: { 'content-type': 'application/json' },
        payload: '{not json',
      });
      expectError(unsigned, 401, 'unauthorized');
      expectError(await h.inbound('{not json'), 400, 'invalid_request');
    });

    it('answers 415 to a signed body of a type it does not take, 401 if unsigned', async () => {
      expectError(await h.inbound('hello', { contentType: 'text/plain' }), 415, 'unsupported_media_type');
      const unsigned = await h.svc.app.inject({
        method: 'POST',
        url: '/v1/inbound/slack',
        headers: { 'content-type': 'text/plain' },
        payload: 'hello',
      });
      expectError(unsigned, 401, 'unauthorized');
    });
  });

  it('answers url_verification with the challenge', async () => {
    const v = fixture('slack-url-verification.json');
    const res = await h.inbound(v);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ challenge: v.challenge });
    const unsigned = await h.svc.app.inject({
      method: 'POST',
      url: '/v1/inbound/slack',
      headers: { 'content-type': 'application/json' },
      payload: v,
    });
    expectError(unsigned, 401, 'unauthorized');
  });

  it('dnd_updated_user makes the user busy + do_not_disturb in the manual tier', async () => {
    expect((await h.presence('alice')).status).toBe('online');
    const res = await h.inbound(dndEvent());
    expect(res.statusCode).toBe(200);
    await h.settle();
    const p = await h.presence('alice');
    expect(p).toMatchObject({ status: 'busy', activity: 'do_not_disturb', source: 'manual' });
    expect(h.changes.at(-1)).toMatchObject({ userId: 'alice', cause: 'slack' });

    // DND turned off.
    await h.inbound({
      ...dndEvent('Ev0DND2'),
      event: {
        type: 'dnd_updated_user',
        user: 'U0ALICE',
        dnd_status: { dnd_enabled: false, next_dnd_start_ts: 1, next_dnd_end_ts: 1 },
      },
    });
    await h.settle();
    expect(await h.presence('alice')).toMatchObject({ status: 'online', activity: null, source: 'app' });
  });

  it('user_status_changed sets the custom status with its expiration, and it ends on time', async () => {
    const exp = nowS() + 600;
    await h.inbound(statusEvent('Commuting to office!', ':docs-team-in-transit:', exp));
    await h.settle();
    let p = await h.presence('alice');
    expect(p.custom_status).toEqual({
      text: 'Commuting to office!',
      emoji: ':docs-team-in-transit:',
      expires_at: new Date(exp * 1000).toISOString(),
    });
    expect(h.changes.at(-1)!.changed).toEqual(['custom_status']);

    h.clock.set(exp * 1000);
    await h.connector.pollDue();
    p = await h.presence('alice');
    expect(p.custom_status).toBeNull();
    expect(p.status).toBe('online');
  });

  it('user_change with the status cleared clears it', async () => {
    await h.inbound(statusEvent('Lunch', ':taco:', 0));
    await h.settle();
    expect((await h.presence('alice')).custom_status).toMatchObject({ text: 'Lunch', expires_at: null });
    const cleared = statusEvent('', '', 0, 'Ev0STATUS2') as any;
    cleared.event.type = 'user_change';
    await h.inbound(cleared);
    await h.settle();
    expect((await h.presence('alice')).custom_status).toBeNull();
  });

  it('drops a retried delivery of an event already taken', async () => {
    const first = await h.inbound(dndEvent('Ev0RETRY'));
    expect(first.json()).toEqual({ ok: true });
    const retry = await h.inbound(dndEvent('Ev0RETRY'), {
      headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' },
    });
    expect(retry.statusCode).toBe(200);
    expect(retry.json()).toEqual({ ok: true, duplicate: true });
    await h.settle();
    expect(handled).toEqual(['Ev0RETRY']);
    // A new event id is new work.
    await h.inbound(dndEvent('Ev0OTHER'));
    await h.settle();
    expect(handled).toEqual(['Ev0RETRY', 'Ev0OTHER']);
  });

  it('ignores events about unlinked users and event types it does not read', async () => {
    const changes = h.changes.length;
    const stranger = { ...dndEvent('Ev0X1'), event: { ...(dndEvent() as any).event, user: 'U0STRANGER' } };
    expect((await h.inbound(stranger)).statusCode).toBe(200);
    const other = { ...dndEvent('Ev0X2'), event: { type: 'app_mention', user: 'U0ALICE', text: 'hi' } };
    expect((await h.inbound(other)).statusCode).toBe(200);
    await h.settle();
    expect(h.changes.length).toBe(changes);
  });

  it('user_huddle_changed: a linked user in a huddle is busy + in_call until it ends', async () => {
    const e = statusEvent('', '', 0, 'Ev0HUDDLE1') as any;
    e.event.type = 'user_huddle_changed';
    Object.assign(e.event.user.profile, {
      huddle_state: 'in_a_huddle',
      huddle_state_expiration_ts: nowS() + 300,
    });
    await h.inbound(e);
    await h.settle();
    expect(await h.presence('alice')).toMatchObject({ status: 'busy', activity: 'in_call', source: 'app' });
    h.clock.advance(300_000);
    await h.connector.pollDue();
    expect(await h.presence('alice')).toMatchObject({ status: 'online', activity: null });
  });

  it.each<[string, (e: any) => unknown]>([
    [
      'status_text is a number',
      (e) => ({ ...e, event: { ...e.event, user: { ...e.event.user, profile: { status_text: 5 } } } }),
    ],
    [
      'status_expiration is a string',
      (e) => ({
        ...e,
        event: {
          ...e.event,
          user: { ...e.event.user, profile: { status_text: 'x', status_expiration: 'soon' } },
        },
      }),
    ],
    [
      'huddle_state is an object',
      (e) => ({
        ...e,
        event: {
          ...e.event,
          type: 'user_huddle_changed',
          user: { ...e.event.user, profile: { huddle_state: {} } },
        },
      }),
    ],
    ['profile is missing', (e) => ({ ...e, event: { ...e.event, user: { id: 'U0ALICE' } } })],
    ['user is a string', (e) => ({ ...e, event: { ...e.event, user: 'U0ALICE' } })],
    [
      'dnd_status.dnd_enabled is a string',
      (e) => ({
        ...e,
        event: {
          type: 'dnd_updated_user',
          user: 'U0ALICE',
          dnd_status: { dnd_enabled: 'true', next_dnd_start_ts: 1, next_dnd_end_ts: 9e9 },
        },
      }),
    ],
    ['dnd_status is missing', (e) => ({ ...e, event: { type: 'dnd_updated_user', user: 'U0ALICE' } })],
    [
      'the dnd user is an object',
      (e) => ({
        ...e,
        event: {
          type: 'dnd_updated_user',
          user: { id: 'U0ALICE' },
          dnd_status: { dnd_enabled: true, next_dnd_start_ts: 1, next_dnd_end_ts: 9e9 },
        },
      }),
    ],
    ['event is a string', (e) => ({ ...e, event: 'dnd_updated_user' })],
    ['event is missing', (e) => ({ ...e, event: undefined })],
    ['event.type is a number', (e) => ({ ...e, event: { ...e.event, type: 3 } })],
    ['type is a number', (e) => ({ ...e, type: 1 })],
    ['an unknown envelope type', (e) => ({ ...e, type: 'block_actions' })],
    ['the body is an array', (e) => [e]],
    ['the body is a JSON number', () => 42],
  ])('signed but malformed (%s) → 200 and ignored, no state change', async (_why, mutate) => {
    const before = await h.presence('alice');
    const changes = h.changes.length;
    const res = await h.inbound(JSON.stringify(mutate(statusEvent('Malformed', ':x:', 0, 'Ev0BAD'))));
    expect(res.statusCode).toBe(200);
    await h.settle();
    expect(h.changes.length).toBe(changes);
    expect(await h.presence('alice')).toEqual(before);
  });

  it('keeps a pushed state as long as a polled one (and needs no API key)', async () => {
    await h.inbound(dndEvent('Ev0TTL', nowS() - 60, nowS() + 24 * 3600));
    await h.settle();
    const p = await h.presence('alice');
    // Pushed state lives as long as a polled one: three intervals.
    expect(Date.parse(p.expires_at) - Date.parse(p.observed_at)).toBe(3 * MIN);
  });
});

describe('Slack inbound route: bare', () => {
  function bareApp(
    signingSecret: string,
    clock: Clock,
    handler: SlackInboundDeps['handler'],
  ): FastifyInstance {
    const app = Fastify({ logger: false });
    app.setErrorHandler(errorHandler);
    slackInboundRoutes(app, { signingSecret, clock, handler });
    return app;
  }
  /** The bare app sets no x-request-id header; the body is checked alone. */
  const expect401 = (res: LightMyRequestResponse): void => {
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toMatchObject({ code: 'unauthorized', details: [] });
  };

  it("passes Slack's documented test vector through the route (a signed form post is acknowledged)", async () => {
    const v = fixture('slack-signing-test-vector.json');
    const clock = new FakeClock(Number(v.x_slack_request_timestamp) * 1000 + 30_000);
    const seen: unknown[] = [];
    const app = bareApp(v.signing_secret, clock, (e) => {
      seen.push(e);
    });
    const post = (payload: string): Promise<LightMyRequestResponse> =>
      app.inject({
        method: 'POST',
        url: '/v1/inbound/slack',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-slack-request-timestamp': v.x_slack_request_timestamp,
          'x-slack-signature': v.x_slack_signature,
        },
        payload,
      });
    const res = await post(v.body);
    expect(res.statusCode).toBe(200);
    // The same bytes with one character changed are refused.
    expect401(await post(v.body.replace('roadrunner', 'roadrunnex')));
    // And the genuine request replayed after the window is refused too.
    clock.advance(5 * MIN);
    expect401(await post(v.body));
    expect(seen).toEqual([]);
    await app.close();
  });

  it('answers 200 at once and only then runs the handler, however long it takes', async () => {
    let started = 0;
    let release: () => void = () => undefined;
    const app = bareApp(SIGNING_SECRET, systemClock, () => {
      started += 1;
      return new Promise<void>((r) => {
        release = r;
      });
    });
    const body = JSON.stringify({
      type: 'event_callback',
      event_id: 'Ev0SLOW',
      event: { type: 'user_change' },
    });
    const ts = Math.floor(systemClock.now() / 1000);
    const res = await app.inject({
      method: 'POST',
      url: '/v1/inbound/slack',
      headers: {
        'content-type': 'application/json',
        'x-slack-request-timestamp': String(ts),
        'x-slack-signature': slackSign(SIGNING_SECRET, ts, body),
      },
      payload: body,
    });
    // Answered before the processing even started (and it cannot finish before release()): no
    // stopwatch needed to show the acknowledgement does not wait for it.
    expect(res.statusCode).toBe(200);
    expect(started).toBe(0);
    await new Promise((r) => setImmediate(r));
    expect(started).toBe(1);
    release();
    await app.close();
  });
});
