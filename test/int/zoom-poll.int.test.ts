import { ZoomConnector } from '../../connectors/zoom/connector';
import { FakeOAuthServer, PUBLIC_URL } from '../helpers/fake-oauth';
import { FakeZoomApi } from '../helpers/fake-zoom';
import { testApi, type TestApi } from '../helpers/http';
import { webhookTap } from '../helpers/webhook-tap';

describe('Zoom polling with a Server-to-Server token', () => {
  let oauth: FakeOAuthServer;
  let zoomApi: FakeZoomApi;
  let api: TestApi;
  let connector: ZoomConnector;
  const waits: number[] = [];

  beforeEach(async () => {
    oauth = await FakeOAuthServer.start({ flavor: 'zoom' });
    api = await testApi({
      ...oauth.env,
      ZOOM_ACCOUNT_ID: 'acct-1',
      PUBLIC_URL,
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    });
    zoomApi = new FakeZoomApi(
      (t) => oauth.issued.access.includes(t),
      () => api.clock.now(),
    );
    await zoomApi.listen();
    const app = await api.svc.connections!.connectApp('zoom');
    waits.length = 0;
    connector = new ZoomConnector({
      apiUrl: zoomApi.url,
      token: () => api.svc.connections!.getAccessToken(app.id),
      clock: api.clock,
      perSecond: 20,
      manual: true,
      sleep: (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
    });
    await api.svc.host.start(connector);
    for (const [user, zoomId] of [
      ['jo', 'z-jo'],
      ['max', 'z-max'],
    ] as const) {
      await api.svc.engine.putUser(user, {});
      await api.svc.engine.linkAccount(user, { platform: 'zoom', workspaceId: '', externalId: zoomId });
    }
  });
  afterEach(async () => {
    await api.close();
    await zoomApi.close();
    await oauth.close();
  });

  it('polls every linked user with the S2S token and moves their presence', async () => {
    zoomApi.statuses.set('z-jo', 'In_A_Zoom_Meeting');
    zoomApi.statuses.set('z-max', 'Do_No_Disturb');
    await connector.pollOnce();
    expect(api.svc.engine.get('jo')).toMatchObject({
      status: 'busy',
      activity: 'in_meeting',
      platforms: { zoom: { raw: 'In_A_Zoom_Meeting' } },
    });
    expect(api.svc.engine.get('max')).toMatchObject({
      status: 'busy',
      activity: 'do_not_disturb',
      source: 'manual',
    });
    expect(zoomApi.calls.every((c) => c.auth === `Bearer ${oauth.issued.access[0]}`)).toBe(true);
    expect(waits).toEqual([50, 50]); // spaced to 20 requests a second
    expect(connector.health()).toMatchObject({ state: 'ok', lastError: null });
  });

  it('fetches a new S2S token ahead of its one-hour expiry', async () => {
    zoomApi.statuses.set('z-jo', 'Available');
    await connector.pollOnce();
    api.clock.advance(56 * 60_000); // within the refresh margin of the 3599 s token
    await connector.pollOnce();
    expect(oauth.callsTo('token', 'account_credentials').length).toBe(2);
    expect(zoomApi.calls.at(-1)?.auth).toBe(`Bearer ${oauth.issued.access[1]}`);
  });

  it('honours Retry-After on 429 and recovers', async () => {
    zoomApi.statuses.set('z-jo', 'Away');
    zoomApi.statuses.set('z-max', 'Available');
    zoomApi.throttle(1, 7);
    await connector.pollOnce();
    expect(waits[0]).toBe(7000);
    expect(api.svc.engine.get('jo')?.version).toBe(0); // throttled this round
    expect(api.svc.engine.get('max')?.status).toBe('online');
    await connector.pollOnce();
    expect(api.svc.engine.get('jo')?.status).toBe('away');
    expect(connector.health().state).toBe('ok');
  });

  it('sends connector.degraded and connector.recovered webhooks as its health crosses', async () => {
    const tap = await webhookTap(api.svc, api.clock);
    zoomApi.statuses.set('z-jo', 'Available');
    zoomApi.statuses.set('z-max', 'Available');
    await connector.pollOnce();
    api.svc.host.checkHealth(); // ok, as before: nothing to say
    zoomApi.throttle(2, 1);
    await connector.pollOnce();
    api.svc.host.checkHealth();
    api.svc.host.checkHealth(); // still degraded: said once
    await connector.pollOnce();
    api.svc.host.checkHealth();
    const events = await tap.until((e) => e.filter((x) => x.type.startsWith('connector.')).length >= 2);
    const connectorEvents = events.filter((x) => x.type.startsWith('connector.'));
    expect(connectorEvents.map((x) => x.type)).toEqual(['connector.degraded', 'connector.recovered']);
    expect(connectorEvents[0]!.data).toMatchObject({
      platform: 'zoom',
      health: 'degraded',
      last_error: 'rate limited (429)',
    });
    expect(connectorEvents[1]!.data).toMatchObject({ platform: 'zoom', health: 'ok', last_error: null });
    await tap.close();
  });

  it('an unknown value is logged once and never guessed', async () => {
    zoomApi.statuses.set('z-jo', 'Teleporting');
    await connector.pollOnce();
    await connector.pollOnce();
    expect(api.svc.engine.get('jo')?.version).toBe(0);
  });

  it('a refused token makes the connector degraded, then down, with the reason', async () => {
    const bad = new ZoomConnector({
      apiUrl: zoomApi.url,
      token: () => Promise.resolve('not-a-token'),
      clock: api.clock,
      manual: true,
      sleep: () => Promise.resolve(),
    });
    await api.svc.host.start(bad);
    await bad.pollOnce();
    expect(bad.health()).toMatchObject({
      state: 'degraded',
      lastError: expect.stringMatching(/HTTP 401 \(token refused\)/),
    });
    await bad.pollOnce();
    expect(bad.health()).toMatchObject({
      state: 'down',
      lastError: expect.stringMatching(/HTTP 401 \(token refused\)/),
    });
    expect(bad.health().lastError).not.toContain('not-a-token');
  });
});
