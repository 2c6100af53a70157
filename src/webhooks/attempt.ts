/**
 * @module webhooks/attempt
 * One attempt of the dispatcher: the signed request (or its refusal before any connection), and
 * how its outcome is worded: transport errors, refusals, HTTP statuses that are not a success.
 */

import { STATUS_CODES } from 'node:http';

import type { Agent } from 'undici';

import type { EndpointQueue, Item } from './dispatch-queue';
import { post, type PostResult } from './sender';
import { signatureHeader } from './sign';

export function describeError(error: Error | null, timeoutMs: number): string {
  if (error === null) return 'the connection closed without an answer';
  const e = error as { name?: string; code?: string; message?: string; cause?: unknown };
  if (e.code === 'UND_ERR_HEADERS_TIMEOUT') return `no response within ${timeoutMs} ms`;
  if (e.code === 'UND_ERR_BODY_TIMEOUT') return `the response body stalled for ${timeoutMs} ms`;
  if (e.code === 'UND_ERR_CONNECT_TIMEOUT') return `could not connect within ${timeoutMs} ms`;
  const cause = e.cause as { code?: string; message?: string } | undefined;
  const code = e.code ?? cause?.code;
  const message = (cause?.message ?? e.message ?? error.name).slice(0, 300);
  return code === undefined ? message : `${code}: ${message}`;
}

/**
 * The outcome of an attempt refused before any connection, with the code the connection-time
 * guard uses too. Still asynchronous, like a send: the pump must not be re-entered.
 */
export const refusedPost = (reason: string): Promise<PostResult> =>
  Promise.resolve({
    statusCode: null,
    retryAfter: undefined,
    error: Object.assign(new Error(reason), { code: 'EPRIVATETARGET' }),
  });

export function httpError(status: number): string {
  const text = `HTTP ${status}${STATUS_CODES[status] === undefined ? '' : ` ${STATUS_CODES[status]}`}`;
  return status >= 300 && status < 400 ? `${text} (redirects are not followed)` : text;
}

/** Sends one delivery, signed with the endpoint's keys at `startedAt`, or refuses to. */
export function request(
  agent: Agent,
  q: EndpointQueue,
  item: Item,
  startedAt: number,
  timestamp: number,
  userAgent: string,
  allowPrivateTargets: boolean,
): Promise<PostResult> {
  // Checked at every attempt, whatever the setting was when the endpoint was saved. A refusal
  // is a failed attempt like any other: retried on the schedule, disabled after 5 days.
  const refused = allowPrivateTargets ? null : q.refusal();
  return refused !== null
    ? refusedPost(refused)
    : post(
        agent,
        q.target(),
        {
          'content-type': 'application/json',
          'user-agent': userAgent,
          'webhook-id': item.msgId,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signatureHeader(q.keysAt(startedAt), item.msgId, timestamp, item.body),
        },
        item.body,
      );
}
