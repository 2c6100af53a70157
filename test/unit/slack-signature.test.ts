/**
 * Slack's v0 request signature: Slack's own worked example verifies, and a table of one-defect
 * cases built from one valid request each fails for the reason it names. Bolt's
 * `verifySlackRequest` agrees wherever it checks the same thing.
 */

import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { verifySlackRequest } from '@slack/bolt';

import { checkSlackSignature, type SlackSignatureCheck } from '../../connectors/slack/client';

interface Vector {
  signing_secret: string;
  x_slack_request_timestamp: string;
  body: string;
  x_slack_signature: string;
}

const vector = JSON.parse(
  readFileSync(join(__dirname, '../../connectors/slack/fixtures/slack-signing-test-vector.json'), 'utf8'),
) as Vector;
const vectorNow = Number(vector.x_slack_request_timestamp) * 1000;

const sign = (secret: string, ts: string, body: string): string =>
  `v0=${createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`;

interface Req {
  signingSecret: string;
  rawBody: string;
  timestamp: string | undefined;
  signature: string | undefined;
  nowMs: number;
}

/** A valid request: the one-defect cases each change one thing. */
function valid(): Req {
  const ts = '1763906400';
  const body = '{"type":"event_callback","event_id":"Ev1","event":{"type":"dnd_updated_user"}}';
  return {
    signingSecret: 'shh-secret',
    rawBody: body,
    timestamp: ts,
    signature: sign('shh-secret', ts, body),
    nowMs: Number(ts) * 1000,
  };
}

describe('Slack request signature', () => {
  it("verifies Slack's documented test vector", () => {
    const result = checkSlackSignature({
      signingSecret: vector.signing_secret,
      rawBody: vector.body,
      timestamp: vector.x_slack_request_timestamp,
      signature: vector.x_slack_signature,
      nowMs: vectorNow,
    });
    expect(result).toBe('ok');
    // And bolt, on the same input, agrees.
    expect(() =>
      verifySlackRequest({
        signingSecret: vector.signing_secret,
        body: vector.body,
        headers: {
          'x-slack-signature': vector.x_slack_signature,
          'x-slack-request-timestamp': Number(vector.x_slack_request_timestamp),
        },
        nowMilliseconds: vectorNow,
      }),
    ).not.toThrow();
  });

  it('accepts a valid request', () => {
    expect(checkSlackSignature(valid())).toBe('ok');
  });

  const cases: [string, (r: Req) => Req, SlackSignatureCheck][] = [
    ['missing signature header', (r) => ({ ...r, signature: undefined }), 'missing'],
    ['missing timestamp header', (r) => ({ ...r, timestamp: undefined }), 'missing'],
    ['empty signature', (r) => ({ ...r, signature: '' }), 'missing'],
    ['wrong secret', (r) => ({ ...r, signingSecret: 'another-secret' }), 'mismatch'],
    ['tampered body', (r) => ({ ...r, rawBody: r.rawBody.replace('Ev1', 'Ev2') }), 'mismatch'],
    [
      'body re-serialized (whitespace added)',
      (r) => ({ ...r, rawBody: r.rawBody.replace(':', ': ') }),
      'mismatch',
    ],
    ['timestamp older than 5 minutes', (r) => ({ ...r, nowMs: r.nowMs + 5 * 60_000 + 1000 }), 'stale'],
    ['timestamp more than 5 minutes ahead', (r) => ({ ...r, nowMs: r.nowMs - 5 * 60_000 - 1000 }), 'stale'],
    [
      'signature of another timestamp',
      (r) => ({ ...r, timestamp: String(Number(r.timestamp) + 1) }),
      'mismatch',
    ],
    ['unknown version v1=', (r) => ({ ...r, signature: r.signature!.replace(/^v0=/, 'v1=') }), 'malformed'],
    ['signature not hex', (r) => ({ ...r, signature: `v0=${'z'.repeat(64)}` }), 'malformed'],
    ['truncated signature', (r) => ({ ...r, signature: r.signature!.slice(0, -2) }), 'malformed'],
    ['timestamp not a number', (r) => ({ ...r, timestamp: '17639O6400' }), 'malformed'],
    ['timestamp with a leading zero', (r) => ({ ...r, timestamp: `0${r.timestamp!}` }), 'malformed'],
    ['empty signing secret', (r) => ({ ...r, signingSecret: '' }), 'mismatch'],
  ];

  it.each(cases)('refuses: %s', (_name, defect, expected) => {
    expect(checkSlackSignature(defect(valid()))).toBe(expected);
  });

  it('accepts at exactly five minutes and refuses a second later', () => {
    const r = valid();
    expect(checkSlackSignature({ ...r, nowMs: r.nowMs + 5 * 60_000 })).toBe('ok');
    expect(checkSlackSignature({ ...r, nowMs: r.nowMs + 5 * 60_000 + 1000 })).toBe('stale');
  });

  it('bolt refuses the same wrong-secret, tampered and stale requests', () => {
    for (const [, defect, expected] of cases) {
      if (expected !== 'mismatch' && expected !== 'stale') continue;
      const r = defect(valid());
      if (r.signingSecret === '' || (expected === 'stale' && r.nowMs < valid().nowMs)) continue; // bolt checks the past side only
      expect(() =>
        verifySlackRequest({
          signingSecret: r.signingSecret,
          body: r.rawBody,
          headers: { 'x-slack-signature': r.signature!, 'x-slack-request-timestamp': Number(r.timestamp) },
          nowMilliseconds: r.nowMs,
        }),
      ).toThrow(/Failed to verify authenticity/);
    }
  });
});
