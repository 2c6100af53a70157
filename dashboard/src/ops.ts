/**
 * @module dashboard/ops
 * Operations: the figures (read from /metrics), each connector's health (`GET /v1/connectors`),
 * the OAuth connections that need re-authorization with a button that starts the flow, and the
 * webhook endpoints with their delivery log, failures and replay.
 */

import { useState } from 'preact/hooks';

import { ApiError, call, metricsText } from './api';
import { html } from './html';
import { useNow, usePolled } from './hooks';
import { ageOf, figuresFrom, FIGURES, formatTime, formatUntil, HEALTH_MARK, parseMetrics } from './logic';

interface ConnectorRow {
  platform: string;
  display_name: string;
  enabled: boolean;
  simulated: boolean;
  mode: string;
  health: string;
  last_success_at: string | null;
  last_error: string | null;
  next_poll_at: string | null;
}

export interface Connection {
  id: string;
  platform: string;
  kind: string;
  user_id: string | null;
  external_id: string;
  health: string;
  last_error: string | null;
  expires_soon: boolean;
  grant_expires_at: string | null;
}

interface Endpoint {
  id: string;
  url: string;
  enabled: boolean;
  disabled_reason: string | null;
  failing_since: string | null;
}

interface Delivery {
  id: number;
  webhook_id: string;
  type: string;
  user_id: string | null;
  version: number | null;
  status: string;
  replay: boolean;
  attempt_count: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
}

const why = (e: string | null): string | null =>
  e === null
    ? null
    : /needs the admin scope|admin scope/.test(e)
      ? 'this needs a key with the admin scope'
      : e;

function Figures() {
  const m = usePolled(async () => figuresFrom(parseMetrics(await metricsText())), 5000, []);
  return html`<section aria-labelledby="figures-title">
    <h2 id="figures-title">Figures</h2>
    ${m.error === null ? null : html`<p class="error">${m.error}</p>`}
    <dl class="figures">
      ${FIGURES.map(
        (f) =>
          html`<div class="figure" data-figure=${f.name}>
            <dt>${f.label}</dt>
            <dd>${m.data?.[f.name] === undefined ? '—' : f.format(m.data[f.name]!)}</dd>
          </div>`,
      )}
    </dl>
  </section>`;
}

function Connectors({ apiKey }: { apiKey: string }) {
  const now = useNow(1000);
  const c = usePolled<{ connectors: ConnectorRow[] }>(() => call(apiKey, 'GET', '/v1/connectors'), 3000, []);
  return html`<section aria-labelledby="connectors-title">
    <h2 id="connectors-title">Connectors</h2>
    ${c.error === null ? null : html`<p class="error">${c.error}</p>`}
    <div class="table-wrap">
      <table class="connectors">
        <thead>
          <tr>
            <th scope="col">Platform</th>
            <th scope="col">Health</th>
            <th scope="col">Mode</th>
            <th scope="col">Last success</th>
            <th scope="col">Last error</th>
            <th scope="col">Next poll</th>
          </tr>
        </thead>
        <tbody>
          ${(c.data?.connectors ?? []).map(
            (r) =>
              html`<tr data-platform=${r.platform} data-health=${r.health}>
                <th scope="row" data-label="Platform">
                  ${r.display_name}${r.simulated ? html` <em>(simulated)</em>` : null}
                </th>
                <td data-label="Health">
                  <span class=${`health h-${r.health}`}
                    ><span aria-hidden="true">${HEALTH_MARK[r.health] ?? '?'}</span> ${r.health}</span
                  >
                </td>
                <td data-label="Mode">${r.enabled ? r.mode : 'off'}</td>
                <td data-label="Last success">
                  ${r.last_success_at === null ? '—' : `${ageOf(r.last_success_at, now)} ago`}
                </td>
                <td data-label="Last error" class="wrap">${r.last_error ?? '—'}</td>
                <td data-label="Next poll">${formatUntil(r.next_poll_at, now)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </section>`;
}

/** Starts the platform's OAuth flow for this person in a new tab (the service redirects back to its callback). */
export function ReauthButton({ apiKey, connection }: { apiKey: string; connection: Connection }) {
  const [error, setError] = useState<string | null>(null);
  const start = async (): Promise<void> => {
    const q = connection.user_id === null ? '' : `?user_id=${encodeURIComponent(connection.user_id)}`;
    try {
      const r: { url: string } = await call(
        apiKey,
        'GET',
        `/v1/connect/${connection.platform}${q}`,
        undefined,
        {
          accept: 'application/json',
        },
      );
      window.open(r.url, '_blank', 'noopener');
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return html`<button type="button" onClick=${() => void start()}>Re-authorize ${connection.platform}</button
    >${error === null ? null : html` <span class="error">${error}</span>`}`;
}

function Reauth({ apiKey }: { apiKey: string }) {
  const c = usePolled<{ connections: Connection[] } | 'off'>(
    () =>
      call<{ connections: Connection[] }>(apiKey, 'GET', '/v1/connections').catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404) return 'off' as const;
        throw e;
      }),
    10_000,
    [],
  );
  const needing =
    c.data === null || c.data === 'off'
      ? []
      : c.data.connections.filter(
          (x) => x.health === 'reauth_required' || x.health === 'revoked' || x.expires_soon,
        );
  return html`<section aria-labelledby="reauth-title">
    <h2 id="reauth-title">Connections needing re-authorization</h2>
    ${c.error === null ? null : html`<p class="error">${why(c.error)}</p>`}
    ${
      c.data === 'off'
        ? html`<p>OAuth connections are off on this service.</p>`
        : needing.length === 0
          ? html`<p>${c.data === null ? 'loading…' : 'None: every connection is healthy.'}</p>`
          : html`<ul>
              ${needing.map(
                (x) =>
                  html`<li data-connection=${x.id}>
                    <b>${x.platform}</b> ${x.user_id ?? '(app)'} · ${x.external_id}:
                    ${x.health}${x.expires_soon ? ' (expires soon)' : ''}${x.last_error ? ` (${x.last_error})` : ''}
                    <${ReauthButton} apiKey=${apiKey} connection=${x} />
                  </li>`,
              )}
            </ul>`
    }
  </section>`;
}

function Deliveries({ apiKey, endpoint }: { apiKey: string; endpoint: Endpoint }) {
  const now = useNow(1000);
  const [failuresOnly, setFailuresOnly] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  const d = usePolled<{ deliveries: Delivery[] }>(
    () =>
      call(
        apiKey,
        'GET',
        `/v1/webhooks/${encodeURIComponent(endpoint.id)}/deliveries?limit=50${failuresOnly ? '&status=failed' : ''}`,
      ),
    4000,
    [endpoint.id, failuresOnly],
  );
  const replay = async (since: string, what: string): Promise<void> => {
    try {
      const r: { replayed: number } = await call(
        apiKey,
        'POST',
        `/v1/webhooks/${encodeURIComponent(endpoint.id)}/replay`,
        { since },
      );
      setNote(`Replayed ${r.replayed} event${r.replayed === 1 ? '' : 's'} ${what}.`);
      d.reload();
    } catch (e) {
      setNote(`Replay refused: ${(e as Error).message}`);
    }
  };
  return html`<div class="deliveries">
    <div class="toolbar">
      <label class="check"
        ><input
          type="checkbox"
          checked=${failuresOnly}
          onChange=${(e: Event) => setFailuresOnly((e.target as HTMLInputElement).checked)}
        />
        failures only</label
      >
      <button
        type="button"
        onClick=${() => void replay(new Date(Date.now() - 300_000).toISOString(), 'from the last 5 minutes')}
      >
        Replay the last 5 minutes
      </button>
      <span role="status" class="note">${note}</span>
    </div>
    ${d.error === null ? null : html`<p class="error">${why(d.error)}</p>`}
    <div class="table-wrap">
      <table class="delivery-log">
        <caption class="visually-hidden">
          Delivery log of ${endpoint.url}
        </caption>
        <thead>
          <tr>
            <th scope="col">Delivery</th>
            <th scope="col">Event</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Last answer</th>
            <th scope="col">Next attempt</th>
            <th scope="col">Replay</th>
          </tr>
        </thead>
        <tbody>
          ${(d.data?.deliveries ?? []).map(
            (x) =>
              html`<tr
                data-delivery=${x.id}
                data-status=${x.status}
                data-replay=${x.replay ? 'true' : 'false'}
              >
                <th scope="row" data-label="Delivery">
                  #${x.id}${x.replay ? html` <em>replay</em>` : null}<br /><small
                    >${formatTime(x.created_at, now)}</small
                  >
                </th>
                <td data-label="Event">
                  ${x.type}${x.user_id === null ? '' : ` · ${x.user_id}`}${x.version === null ? '' : ` v${x.version}`}
                </td>
                <td data-label="Status">
                  <span class=${`dstatus d-${x.status}`}
                    >${x.status === 'failed' ? '✕ ' : x.status === 'delivered' ? '✓ ' : ''}${x.status}</span
                  >
                </td>
                <td data-label="Attempts">${x.attempt_count}</td>
                <td data-label="Last answer" class="wrap">
                  ${x.last_status_code ?? '—'}${x.last_error ? ` ${x.last_error}` : ''}
                </td>
                <td data-label="Next attempt">${formatUntil(x.next_attempt_at, now)}</td>
                <td data-label="Replay">
                  <button
                    type="button"
                    aria-label=${`Replay from delivery ${x.id}`}
                    onClick=${() => void replay(x.created_at, `from delivery #${x.id} on`)}
                  >
                    Replay
                  </button>
                </td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </div>`;
}

function Webhooks({ apiKey }: { apiKey: string }) {
  const w = usePolled<{ webhooks: Endpoint[] }>(() => call(apiKey, 'GET', '/v1/webhooks'), 10_000, []);
  const [open, setOpen] = useState<string | null>(null);
  const endpoints = w.data?.webhooks ?? [];
  const shown = endpoints.find((e) => e.id === open) ?? endpoints[0];
  return html`<section aria-labelledby="webhooks-title">
    <h2 id="webhooks-title">Webhook endpoints</h2>
    ${w.error === null ? null : html`<p class="error">${why(w.error)}</p>`}
    ${endpoints.length === 0 && w.data !== null ? html`<p>No endpoints.</p>` : null}
    <ul class="endpoints">
      ${endpoints.map(
        (e) =>
          html`<li data-endpoint=${e.id}>
            <button
              type="button"
              aria-pressed=${shown?.id === e.id ? 'true' : 'false'}
              onClick=${() => setOpen(e.id)}
            >
              ${e.url}
            </button>
            ${e.enabled ? html`<span class="health h-ok"><span aria-hidden="true">✓</span> enabled</span>` : html`<span class="health h-down"><span aria-hidden="true">✕</span> disabled (${e.disabled_reason})</span>`}
            ${e.failing_since === null ? null : html` <span class="health h-degraded"><span aria-hidden="true">▲</span> failing since ${e.failing_since}</span>`}
          </li>`,
      )}
    </ul>
    ${shown === undefined ? null : html`<${Deliveries} key=${shown.id} apiKey=${apiKey} endpoint=${shown} />`}
  </section>`;
}

export function Ops({ apiKey }: { apiKey: string }) {
  return html`<div class="ops">
    <${Figures} />
    <${Connectors} apiKey=${apiKey} />
    <${Reauth} apiKey=${apiKey} />
    <${Webhooks} apiKey=${apiKey} />
  </div>`;
}
