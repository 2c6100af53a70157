import { Webhook } from 'standardwebhooks';

import { FakeClock } from '../../src/core/clock';
import { newSecret, secretKey, sign, signatureHeader } from '../../src/webhooks/sign';
import { verifyWebhook, WebhookVerificationError } from '../../src/webhooks';

const NOW = Date.UTC(2026, 10, 23, 14, 0, 0);
const clock = new FakeClock(NOW);
const TS = NOW / 1000;
const BODY = '{"type":"presence.changed","timestamp":"2026-11-23T14:00:00.000Z","data":{"user_id":"alice"}}';
const ID = 'msg_01JDAVQ2Z3ABCDEFGHJKMNPQRS';

describe('Standard Webhooks signing', () => {
  const secret = newSecret();

  it('makes whsec_ secrets of 32 random bytes', () => {
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(secretKey(secret)).toHaveLength(32);
    expect(newSecret()).not.toBe(secret);
  });

  it('signs exactly as the standardwebhooks package does', () => {
    const theirs = new Webhook(secret).sign(ID, new Date(NOW), BODY);
    expect(sign(secret, ID, TS, BODY)).toBe(theirs);
    expect(sign(secretKey(secret), ID, TS, Buffer.from(BODY))).toBe(theirs);
    // The known-answer example of the Standard Webhooks specification.
    expect(
      sign(
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        'msg_p5jXN8AQM9LWM0D4loKWxJek',
        1614265330,
        '{"test": 2432232314}',
      ),
    ).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('what it sends verifies with the standardwebhooks package (at the real time)', () => {
    const now = Math.floor(Date.now() / 1000);
    const headers = {
      'webhook-id': ID,
      'webhook-timestamp': String(now),
      'webhook-signature': signatureHeader([secretKey(secret)], ID, now, BODY),
    };
    expect(new Webhook(secret).verify(BODY, headers)).toEqual(JSON.parse(BODY));
  });

  it('during a rotation, sends both signatures; each secret verifies the message', () => {
    const old = newSecret();
    const now = Math.floor(Date.now() / 1000);
    const header = signatureHeader([secretKey(secret), secretKey(old)], ID, now, BODY);
    const [first, second] = header.split(' ');
    expect(first).toBe(sign(secret, ID, now, BODY));
    expect(second).toBe(sign(old, ID, now, BODY));
    const headers = { 'webhook-id': ID, 'webhook-timestamp': String(now), 'webhook-signature': header };
    expect(() => new Webhook(secret).verify(BODY, headers)).not.toThrow();
    expect(() => new Webhook(old).verify(BODY, headers)).not.toThrow();
    expect(() => new Webhook(newSecret()).verify(BODY, headers)).toThrow();
    expect(verifyWebhook(old, BODY, headers)).toEqual(JSON.parse(BODY));
  });
});

describe('verifyWebhook', () => {
  const secret = newSecret();
  const good = {
    'webhook-id': ID,
    'webhook-timestamp': String(TS),
    'webhook-signature': sign(secret, ID, TS, BODY),
  };

  it('returns the parsed body of a good message', () => {
    expect(verifyWebhook(secret, BODY, good, { clock })).toEqual(JSON.parse(BODY));
    expect(verifyWebhook(secret, Buffer.from(BODY), good, { clock })).toEqual(JSON.parse(BODY));
  });

  it('verifies a message signed by the standardwebhooks package', () => {
    const theirs = new Webhook(secret).sign(ID, new Date(NOW), BODY);
    expect(verifyWebhook(secret, BODY, { ...good, 'webhook-signature': theirs }, { clock })).toBeDefined();
  });

  it('takes headers as Node gives them, with any case, or as fetch Headers', () => {
    const upper = {
      'Webhook-Id': ID,
      'WEBHOOK-TIMESTAMP': String(TS),
      'Webhook-Signature': good['webhook-signature'],
    };
    expect(verifyWebhook(secret, BODY, upper, { clock })).toBeDefined();
    expect(verifyWebhook(secret, BODY, new Headers(good), { clock })).toBeDefined();
    const arrays = { ...good, 'webhook-signature': ['v1,bm9wZQ==', good['webhook-signature']] };
    expect(verifyWebhook(secret, BODY, arrays, { clock })).toBeDefined();
  });

  it('accepts a timestamp within the tolerance either way', () => {
    for (const skew of [-300, 300]) {
      const ts = TS + skew;
      const h = { ...good, 'webhook-timestamp': String(ts), 'webhook-signature': sign(secret, ID, ts, BODY) };
      expect(verifyWebhook(secret, BODY, h, { clock })).toBeDefined();
    }
  });

  const signedAt = (ts: number): Record<string, string> => ({
    ...good,
    'webhook-timestamp': String(ts),
    'webhook-signature': sign(secret, ID, ts, BODY),
  });
  const without = (name: string): Record<string, string> => {
    const h: Record<string, string> = { ...good };
    delete h[name];
    return h;
  };

  it.each<[string, string, string | Buffer, Record<string, string>, RegExp]>([
    ['the wrong secret', newSecret(), BODY, good, /no webhook-signature matches/],
    ['a tampered body', secret, BODY.replace('alice', 'mallory'), good, /no webhook-signature matches/],
    [
      'a re-serialized body',
      secret,
      JSON.stringify(JSON.parse(BODY), null, 1),
      good,
      /no webhook-signature matches/,
    ],
    ['an old timestamp', secret, BODY, signedAt(TS - 301), /too old/],
    ['a timestamp in the future', secret, BODY, signedAt(TS + 301), /in the future/],
    [
      'a timestamp that is not a number',
      secret,
      BODY,
      { ...good, 'webhook-timestamp': '2026-11-23' },
      /not a number/,
    ],
    ['a missing webhook-id', secret, BODY, without('webhook-id'), /missing webhook-id/],
    ['a missing webhook-timestamp', secret, BODY, without('webhook-timestamp'), /missing webhook-timestamp/],
    ['a missing webhook-signature', secret, BODY, without('webhook-signature'), /missing webhook-signature/],
    [
      'another webhook-id',
      secret,
      BODY,
      { ...good, 'webhook-id': 'msg_other' },
      /no webhook-signature matches/,
    ],
    [
      'a signature of another version',
      secret,
      BODY,
      { ...good, 'webhook-signature': good['webhook-signature'].replace('v1,', 'v2,') },
      /no webhook-signature matches/,
    ],
    [
      'a truncated signature',
      secret,
      BODY,
      { ...good, 'webhook-signature': good['webhook-signature'].slice(0, 20) },
      /no webhook-signature matches/,
    ],
    ['a secret that is not base64', 'whsec_not base64!', BODY, good, /base64/],
  ])('refuses %s', (_what, key, body, headers, message) => {
    expect(() => verifyWebhook(key, body, headers, { clock })).toThrow(WebhookVerificationError);
    expect(() => verifyWebhook(key, body, headers, { clock })).toThrow(message);
  });

  it('refuses a correctly signed body that is not JSON', () => {
    const h = { ...good, 'webhook-signature': sign(secret, ID, TS, 'not json') };
    expect(() => verifyWebhook(secret, 'not json', h, { clock })).toThrow(/not JSON/);
  });

  it('honours a custom tolerance', () => {
    expect(() => verifyWebhook(secret, BODY, signedAt(TS - 61), { clock, toleranceSeconds: 60 })).toThrow(
      /too old/,
    );
  });
});
