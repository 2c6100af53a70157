/**
 * The Discord connector when things go wrong, with the real discord.js client against the fake
 * Discord: close codes 4014 and 4004, a rejected token, invalid sessions, a gateway that refuses
 * connections, and stopping, including in the library's own pause before a reconnect.
 */

import { BOB, GUILD, discordRig, sleep, waitFor, type DiscordRig } from '../helpers/fake-discord';

describe('Discord connector failures', () => {
  let r: DiscordRig;
  afterEach(async () => {
    await r?.close();
  });

  it('close 4014 (privileged intents off): down with what to do, one IDENTIFY, no reconnects', async () => {
    r = await discordRig({ fake: { privilegedIntents: false } });
    await waitFor(() => r.connector.health().state === 'down', 60_000, 'down health');
    const health = r.connector.health();
    expect(health.lastError).toMatch(/4014/);
    expect(health.lastError).toMatch(/Server Members and Presence intents/);
    expect(health.lastError).toMatch(/Developer Portal/);
    expect(health.lastError).not.toContain(r.fake.token);
    await sleep(1000);
    expect(r.fake.identifies).toHaveLength(1);
    expect(r.fake.connectionAttempts).toBe(1);
    expect(r.fake.openConnections).toBe(0);
    expect(await r.connectorStatus()).toMatchObject({ health: 'down', last_error: health.lastError });
  });

  it('close 4004 (token reset while running): down, one more IDENTIFY, then nothing', async () => {
    r = await discordRig({ connector: { identify: { minGapMs: 100 } } });
    await waitFor(() => r.connector.health().state === 'ok', 60_000, 'the session to be ready');
    // The token is reset in the Developer Portal: the RESUME fails, the new IDENTIFY gets 4004.
    const old = r.fake.token;
    r.fake.token = 'another-token.a.b';
    r.fake.drop();
    await waitFor(() => r.connector.health().state === 'down', 60_000, 'down health');
    expect(r.connector.health().lastError).toMatch(/4004.*token was rejected.*DISCORD_BOT_TOKEN/);
    expect(r.connector.health().lastError).not.toContain(old);
    const identifies = r.fake.identifies.length;
    expect(identifies).toBe(2);
    expect(r.fake.resumes).toEqual([expect.objectContaining({ ok: false })]);
    await sleep(1000);
    expect(r.fake.identifies).toHaveLength(identifies);
    expect(r.fake.openConnections).toBe(0);
  });

  it('a token the REST API rejects (401): down at once, the gateway never contacted', async () => {
    r = await discordRig({ token: 'wrong-token.c.d' });
    await waitFor(() => r.connector.health().state === 'down', 60_000, 'down health');
    expect(r.connector.health().lastError).toMatch(/rejected the bot token.*DISCORD_BOT_TOKEN/);
    expect(r.connector.health().lastError).not.toContain('wrong-token');
    await sleep(800);
    expect(r.fake.restCalls).toEqual(['GET /api/v10/gateway/bot']);
    expect(r.fake.connectionAttempts).toBe(0);
  });

  it('sessions that keep being invalidated: IDENTIFYs are spaced further and further apart', async () => {
    r = await discordRig({
      fake: { invalidateIdentify: true },
      connector: { identify: { minGapMs: 300, stableMs: 60_000 }, maxReconnects: 1000 },
    });
    await waitFor(() => r.fake.identifies.length >= 4, 60_000, 'four IDENTIFYs');
    const t = r.fake.identifyTimes.slice(0, 4);
    const gaps = t.slice(1).map((x, i) => x - t[i]!);
    // discord.js alone would re-identify every ~0.5 s; the gate doubles the gap: 300, 600, 1200 ms
    // (the first is hidden by the library's own half second).
    // Gaps are measured where the IDENTIFYs arrive: a late arrival lengthens the gap before it
    // and shortens the one after, so the bounds leave room for that and test the sum too.
    expect(gaps[1]! + gaps[2]!).toBeGreaterThanOrEqual(1500);
    expect(gaps[2]!).toBeGreaterThanOrEqual(900);
    // Only lower bounds: a busy machine can stretch any gap, never shorten one.
    expect(r.connector.health().state).not.toBe('ok');
  });

  it('a gateway that refuses connections: the client is remade after a growing backoff, then recovers', async () => {
    r = await discordRig({ connector: { maxReconnects: 2, backoffMs: 300, identify: { minGapMs: 50 } } });
    await waitFor(() => r.connector.health().state === 'ok', 60_000, 'the session to be ready');
    r.fake.refuseConnections = true;
    r.fake.drop();
    await waitFor(() => r.connector.stats.clients >= 3, 60_000, 'two new clients');
    const health = r.connector.health();
    expect(health.state).toBe('degraded');
    expect(health.lastError).toMatch(/failed 3 times in a row|could not connect/);
    // ~0.5 s per library retry, 3 per client, plus 300 then 600 ms of backoff: not a tight loop.
    expect(r.fake.connectionAttempts).toBeLessThan(15);
    r.fake.refuseConnections = false;
    await waitFor(() => r.connector.health().state === 'ok', 60_000, 'recovery');
    expect((await r.presence('bob')).status).toBe('online');
  });

  it('stop() closes the gateway and leaves nothing running', async () => {
    r = await discordRig({ connector: { refreshMs: 50 } });
    await waitFor(() => r.connector.health().state === 'ok', 60_000, 'the session to be ready');
    await r.svc.close();
    expect(r.connector.health().state).toBe('off');
    await waitFor(() => r.fake.openConnections === 0, 60_000, 'the socket to close');
    const attempts = r.fake.connectionAttempts;
    const reports = r.connector.stats.reports;
    r.fake.presenceUpdate(GUILD, { userId: BOB, status: 'idle' });
    await sleep(700);
    expect(r.fake.connectionAttempts).toBe(attempts);
    expect(r.connector.stats.reports).toBe(reports);
  });

  it('stop() in the pause before a reconnect: the library does not come back on its own', async () => {
    r = await discordRig();
    await waitFor(() => r.connector.health().state === 'ok', 60_000, 'the session to be ready');
    r.fake.drop(); // discord.js now waits 500 ms, then resumes
    await waitFor(() => r.connector.health().state === 'degraded', 60_000, 'the drop to be seen');
    await r.svc.close();
    await sleep(1200);
    expect(r.fake.connectionAttempts).toBe(1);
    expect(r.fake.openConnections).toBe(0);
    expect(r.fake.resumes).toEqual([]);
  });
});
