/**
 * @module dashboard/person
 * One person: their presence now (live), the timeline of their transitions from history drawn as
 * an SVG chart (one lane per status, with the same transitions as a table for screen readers),
 * their devices, linked accounts and OAuth connections.
 */

import { useState } from 'preact/hooks';

import type { Presence } from '../../src/client';
import { call } from './api';
import { html } from './html';
import { useLive, useNow, usePolled } from './hooks';
import type { LivePeople } from './live';
import {
  ageOf,
  formatRaw,
  formatTime,
  formatUntil,
  STATUS_MARK,
  STATUS_ORDER,
  timelineSegments,
  timeTicks,
  type Segment,
  type Transition,
} from './logic';
import { StatusBadge } from './people';
import { ReauthButton, type Connection } from './ops';

const WINDOWS = [
  { label: '15 min', ms: 900_000 },
  { label: '1 h', ms: 3_600_000 },
  { label: '6 h', ms: 21_600_000 },
  { label: '24 h', ms: 86_400_000 },
];

interface UserDetails {
  user_id: string;
  display_name: string | null;
  timezone: string | null;
  accounts: { platform: string; external_id: string; workspace_id: string | null; linked_at: string }[];
  connections: Connection[];
}

const W = 1000;
const LEFT = 90;
const LANE = 34;
const TOP = 6;

function Timeline(props: {
  segments: Segment[];
  from: number;
  to: number;
  now: number;
  who: string;
  count: number;
}) {
  const { segments, from, to, now } = props;
  const x = (t: number): number => LEFT + ((t - from) / Math.max(1, to - from)) * (W - LEFT - 10);
  const height = TOP + LANE * STATUS_ORDER.length + 24;
  const ticks = timeTicks(from, to);
  return html`<svg
    class="timeline"
    viewBox=${`0 0 ${W} ${height}`}
    role="img"
    aria-label=${`Timeline of ${props.who}: ${props.count} transitions in the window`}
  >
    ${STATUS_ORDER.map(
      (s, i) =>
        html`<g>
          <rect class="lane" x=${LEFT} y=${TOP + i * LANE} width=${W - LEFT - 10} height=${LANE - 6} />
          <text class="lane-label" x="4" y=${TOP + i * LANE + LANE / 2}>${STATUS_MARK[s]} ${s}</text>
        </g>`,
    )}
    ${ticks.map(
      (t) =>
        html`<g>
          <line class="tick" x1=${x(t)} x2=${x(t)} y1=${TOP} y2=${TOP + LANE * STATUS_ORDER.length} />
          <text class="tick-label" x=${x(t)} y=${height - 6}
            >${formatTime(new Date(t).toISOString(), now).slice(-8, -3)}</text
          >
        </g>`,
    )}
    ${segments.map((seg) => {
      const i = STATUS_ORDER.indexOf(seg.status);
      const label = `${seg.status}${seg.activity === null ? '' : ` (${seg.activity})`} from ${formatTime(new Date(seg.start).toISOString(), now)} to ${formatTime(new Date(seg.end).toISOString(), now)}`;
      return html`<rect
        class=${`seg s-${seg.status}`}
        data-status=${seg.status}
        x=${x(seg.start)}
        y=${TOP + i * LANE + 2}
        width=${Math.max(1.5, x(seg.end) - x(seg.start))}
        height=${LANE - 10}
      >
        <title>${label}</title>
      </rect>`;
    })}
  </svg>`;
}

function Devices({ p, now }: { p: Presence; now: number }) {
  const rows = Object.entries(p.platforms).flatMap(([platform, v]) =>
    Object.entries(v.devices ?? {}).map(([id, d]) => ({ platform, id, d })),
  );
  if (rows.length === 0) return html`<p>No devices reported.</p>`;
  return html`<table>
    <thead>
      <tr>
        <th scope="col">Device</th>
        <th scope="col">Platform</th>
        <th scope="col">Status</th>
        <th scope="col">Seen</th>
        <th scope="col">Expires</th>
      </tr>
    </thead>
    <tbody>
      ${rows.map(
        (r) =>
          html`<tr>
            <th scope="row">${r.id}</th>
            <td>${r.platform}</td>
            <td><${StatusBadge} status=${r.d.status} /></td>
            <td>${ageOf(r.d.observed_at, now)} ago</td>
            <td>${formatUntil(r.d.expires_at, now)}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export function PersonView({ live, apiKey, userId }: { live: LivePeople; apiKey: string; userId: string }) {
  useLive(live);
  const now = useNow(1000);
  const [windowMs, setWindowMs] = useState(900_000);
  const p = live.get(userId);
  const version = p?.version ?? 0;
  const details = usePolled<UserDetails>(
    () => call(apiKey, 'GET', `/v1/users/${encodeURIComponent(userId)}`),
    30_000,
    [userId],
  );
  const history = usePolled<{ transitions: Transition[] }>(
    () =>
      call(
        apiKey,
        'GET',
        `/v1/presence/${encodeURIComponent(userId)}/history?since=${encodeURIComponent(new Date(Date.now() - windowMs).toISOString())}&limit=1000`,
      ),
    15_000,
    [userId, windowMs, version],
  );
  const transitions = history.data?.transitions ?? [];
  const from = now - windowMs;
  const segments = p === undefined ? [] : timelineSegments(transitions, from, now, p);
  const name = details.data?.display_name;
  return html`<section aria-labelledby="person-title" class="person">
    <p><a href="#/people">← People</a></p>
    <h2 id="person-title">${userId}${name ? html` <span class="name">${name}</span>` : null}</h2>
    ${
      p === undefined
        ? html`<p>${live.ready ? 'This person has no presence (or is not tracked).' : 'connecting…'}</p>`
        : html`<div class="now">
            <p class="big">
              <${StatusBadge} status=${p.status} />
              ${p.activity === null ? null : html` <span class="activity">${p.activity}</span>`}
              ${p.custom_status === null ? null : html` <span class="custom">“${p.custom_status.text}”</span>`}
              <span class="version">version ${p.version}</span>
            </p>
            <p class="explain">${p.explain}</p>
            <p>
              Reachable via: ${p.reachable_via.length === 0 ? '—' : p.reachable_via.join(', ')} ·
              ${`observed ${ageOf(p.observed_at, now)} ago`}${p.stale ? ' · stale' : ''}
            </p>
          </div>`
    }
    <h3 id="timeline-title">Timeline</h3>
    <div class="windows" role="group" aria-labelledby="timeline-title">
      ${WINDOWS.map(
        (w) =>
          html`<button
            type="button"
            aria-pressed=${w.ms === windowMs ? 'true' : 'false'}
            onClick=${() => setWindowMs(w.ms)}
          >
            ${w.label}
          </button>`,
      )}
    </div>
    ${history.error === null ? null : html`<p class="error">${history.error}</p>`}
    <${Timeline}
      segments=${segments}
      from=${from}
      to=${now}
      now=${now}
      who=${userId}
      count=${transitions.length}
    />
    <details class="transitions" open=${transitions.length <= 12}>
      <summary>${transitions.length} transitions</summary>
      <table>
        <thead>
          <tr>
            <th scope="col">At</th>
            <th scope="col">From</th>
            <th scope="col">To</th>
            <th scope="col">Because of</th>
            <th scope="col">Version</th>
          </tr>
        </thead>
        <tbody>
          ${[...transitions].reverse().map(
            (t) =>
              html`<tr data-version=${t.version}>
                <td>${formatTime(t.at, now)}</td>
                <td>
                  <${StatusBadge} status=${t.from.status} />${t.from.activity ? ` ${t.from.activity}` : ''}
                </td>
                <td><${StatusBadge} status=${t.to.status} />${t.to.activity ? ` ${t.to.activity}` : ''}</td>
                <td>${t.platform ?? 'expiry'}</td>
                <td>${t.version}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </details>
    ${
      p === undefined
        ? null
        : html`<h3>Platforms</h3>
            <table>
              <thead>
                <tr>
                  <th scope="col">Platform</th>
                  <th scope="col">Raw</th>
                  <th scope="col">Status</th>
                  <th scope="col">Source</th>
                  <th scope="col">Seen</th>
                  <th scope="col">Expires</th>
                </tr>
              </thead>
              <tbody>
                ${Object.entries(p.platforms).map(
                  ([platform, v]) =>
                    html`<tr class=${v.stale ? 'stale' : ''}>
                      <th scope="row">${platform}</th>
                      <td><code>${formatRaw(v.raw, 80)}</code></td>
                      <td>
                        <${StatusBadge}
                          status=${v.status}
                        />${v.activity ? ` ${v.activity}` : ''}${v.stale ? ' (stale)' : ''}
                      </td>
                      <td>${v.source ?? '—'}</td>
                      <td>${ageOf(v.observed_at, now)} ago</td>
                      <td>${formatUntil(v.expires_at, now)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>
            <h3>Devices</h3>
            <${Devices} p=${p} now=${now} />`
    }
    <h3>Accounts</h3>
    ${
      details.data === null
        ? html`<p>${details.error ?? 'loading…'}</p>`
        : details.data.accounts.length === 0
          ? html`<p>No linked accounts.</p>`
          : html`<ul>
              ${details.data.accounts.map(
                (a) =>
                  html`<li>
                    <b>${a.platform}</b> ${a.external_id}${a.workspace_id ? ` (${a.workspace_id})` : ''}
                  </li>`,
              )}
            </ul>`
    }
    <h3>Connections</h3>
    ${
      details.data === null || details.data.connections.length === 0
        ? html`<p>No OAuth connections.</p>`
        : html`<ul>
            ${details.data.connections.map(
              (c) =>
                html`<li>
                  <b>${c.platform}</b> ${c.external_id}:
                  ${c.health}${c.last_error ? ` (${c.last_error})` : ''}
                  ${c.health === 'ok' && !c.expires_soon ? null : html` <${ReauthButton} apiKey=${apiKey} connection=${c} />`}
                </li>`,
            )}
          </ul>`
    }
  </section>`;
}
