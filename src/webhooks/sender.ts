/**
 * @module webhooks/sender
 * One POST through undici's `dispatch` API with a minimal handler. The response body of a webhook
 * is never used, so this skips the response stream that `undici.request` builds for every call
 * (a measurable share of the cost at thousands of deliveries per second): it only counts the
 * bytes, up to a bound, and keeps the status and `Retry-After`. Redirects are not followed: no
 * redirect interceptor is installed.
 */

import type { Agent, Dispatcher } from 'undici';

/** More than this from a webhook consumer is not a webhook answer: the connection is cut. */
const MAX_RESPONSE_BYTES = 64 * 1024;

export interface PostTarget {
  readonly origin: string;
  /** Path and query. */
  readonly path: string;
}

export function postTarget(url: string): PostTarget {
  const u = new URL(url);
  return { origin: u.origin, path: `${u.pathname}${u.search}` };
}

/** The outcome of one POST: the status once headers came (it decides), or the error before that. */
export interface PostResult {
  readonly statusCode: number | null;
  readonly retryAfter: string | undefined;
  readonly error: Error | null;
}

class PostHandler implements Dispatcher.DispatchHandler {
  statusCode: number | null = null;
  retryAfter: string | undefined = undefined;
  private bytes = 0;
  private settled = false;

  constructor(private readonly settle: (result: PostResult) => void) {}

  onRequestStart(): void {
    // Nothing to set up: no abort signal, the agent's timeouts bound the request.
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return; // informational
    this.statusCode = statusCode;
    const retryAfter = headers['retry-after'];
    this.retryAfter = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > MAX_RESPONSE_BYTES) controller.abort(new Error('response body over 64 KiB'));
  }

  onResponseEnd(): void {
    this.finish(null);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.finish(error);
  }

  private finish(error: Error | null): void {
    if (this.settled) return;
    this.settled = true;
    this.settle({ statusCode: this.statusCode, retryAfter: this.retryAfter, error });
  }
}

/** POSTs `body`; never rejects. */
export function post(
  agent: Agent,
  target: PostTarget,
  headers: Record<string, string>,
  body: Buffer,
): Promise<PostResult> {
  return new Promise((resolve) => {
    const handler = new PostHandler(resolve);
    try {
      agent.dispatch({ origin: target.origin, path: target.path, method: 'POST', headers, body }, handler);
    } catch (error) {
      resolve({ statusCode: null, retryAfter: undefined, error: error as Error });
    }
  });
}
