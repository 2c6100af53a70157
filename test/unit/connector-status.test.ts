import { earnedHealth, InboundRecord, roleOf } from '../../src/aggregator/connector-host';
import { CONNECTORS } from '../../connectors';

describe('connector status', () => {
  it('is not ok before a first success', () => {
    const base = { lastError: null, nextPollAt: null };
    expect(earnedHealth({ state: 'ok', lastSuccessAt: null, ...base }).state).toBe('pending');
    expect(earnedHealth({ state: 'ok', lastSuccessAt: 1, ...base }).state).toBe('ok');
    expect(earnedHealth({ state: 'degraded', lastSuccessAt: null, ...base }).state).toBe('degraded');
    expect(earnedHealth({ state: 'off', lastSuccessAt: null, ...base }).state).toBe('off');
  });

  it('gives LinkedIn the identity role and every other platform presence', () => {
    expect(roleOf(CONNECTORS.linkedin)).toBe('identity');
    for (const p of ['slack', 'teams', 'discord', 'zoom', 'whatsapp'] as const)
      expect(roleOf(CONNECTORS[p])).toBe('presence');
  });

  it('takes an inbound-only platform health from what its route answered', () => {
    const r = new InboundRecord();
    expect(r.health('whatsapp')).toMatchObject({ state: 'pending', lastSuccessAt: null, lastError: null });
    r.record('whatsapp', 401, 1000);
    expect(r.health('whatsapp')).toMatchObject({ state: 'pending', lastSuccessAt: null });
    expect(r.health('whatsapp').lastError).toMatch(/refused \(401/);
    r.record('whatsapp', 200, 2000);
    expect(r.health('whatsapp')).toMatchObject({ state: 'ok', lastSuccessAt: 2000 });
    r.record('whatsapp', 503, 3000);
    expect(r.health('whatsapp')).toMatchObject({ state: 'degraded', lastSuccessAt: 2000 });
    expect(r.health('whatsapp').lastError).toMatch(/answered 503/);
    r.record('whatsapp', 200, 4000);
    expect(r.health('whatsapp')).toMatchObject({ state: 'ok', lastSuccessAt: 4000 });
    // Not-found and other 4xx (unknown route, bad JSON) say nothing about the platform.
    r.record('zoom', 404, 5000);
    r.record('zoom', 400, 5000);
    expect(r.health('zoom')).toMatchObject({ state: 'pending', lastError: null });
  });
});
