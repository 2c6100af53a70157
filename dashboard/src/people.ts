/**
 * @module dashboard/people
 * Everyone, live: aggregate status (shape, word and colour), availability, where they can be
 * reached, each platform's raw value and the status it maps to, and freshness; searched by id and
 * filtered by status, platform and staleness.
 */

import { useState } from 'preact/hooks';

import type { Status } from '../../src/client';
import { html } from './html';
import { useLive, useNow } from './hooks';
import type { LivePeople } from './live';
import {
  countByStatus,
  filterRows,
  formatAge,
  NO_FILTER,
  ROW_PLATFORMS,
  STATUS_MARK,
  STATUS_ORDER,
  toRow,
  type PersonRow,
  type RowFilter,
} from './logic';

export function StatusBadge({ status }: { status: Status }) {
  return html`<span class=${`status s-${status}`} data-status=${status}
    ><span class="mark" aria-hidden="true">${STATUS_MARK[status]}</span> ${status}</span
  >`;
}

function Row({ row }: { row: PersonRow }) {
  return html`<tr data-user=${row.userId} data-status=${row.status}>
    <th scope="row" data-label="Person">
      <a href=${`#/person/${encodeURIComponent(row.userId)}`}>${row.userId}</a>
    </th>
    <td data-label="Status">
      <${StatusBadge} status=${row.status} />
      ${row.activity === null ? null : html` <span class="activity">${row.activity}</span>`}
      ${row.customText === null ? null : html` <span class="custom">“${row.customText}”</span>`}
    </td>
    <td data-label="Available" class=${row.available ? 'yes' : 'no'}>
      <span aria-hidden="true">${row.available ? '✓' : '✗'}</span> ${row.available ? 'available' : row.reason}
    </td>
    <td data-label="Reachable via">${row.reachableVia.length === 0 ? '—' : row.reachableVia.join(', ')}</td>
    <td data-label="Platforms">
      <ul class="plats">
        ${row.platforms.map(
          (c) =>
            html`<li class=${c.stale ? 'plat stale' : 'plat'} data-platform=${c.platform}>
              <b>${c.platform}</b> <code>${c.raw}</code> →
              <span class=${`status s-${c.status}`}
                ><span class="mark" aria-hidden="true">${STATUS_MARK[c.status]}</span> ${c.status}</span
              >${c.stale ? html` <em>(stale)</em>` : null}
            </li>`,
        )}
      </ul>
    </td>
    <td data-label="Fresh">${row.freshMs === null ? '—' : formatAge(row.freshMs)}</td>
  </tr>`;
}

export function People({ live }: { live: LivePeople }) {
  useLive(live);
  const now = useNow(1000);
  const [filter, setFilter] = useState<RowFilter>(NO_FILTER);
  const rows = live.all().map((p) => toRow(p, now));
  const shown = filterRows(rows, filter);
  const counts = countByStatus(rows);
  const set = (patch: Partial<RowFilter>): void => setFilter({ ...filter, ...patch });
  return html`<section aria-labelledby="people-title">
    <h2 id="people-title">People</h2>
    <p class="summary" aria-live="polite">
      ${live.ready ? `${rows.length.toLocaleString('en-US')} people` : 'connecting…'} ·
      ${STATUS_ORDER.map((s) => html`<span class=${`count s-${s}`}>${STATUS_MARK[s]} ${counts[s]} ${s}</span> `)}
      · stream ${live.transport ?? 'reconnecting'}
      ${live.lastError === null ? null : html` · <span class="error">${live.lastError}</span>`}
    </p>
    <form class="filters" role="search" onSubmit=${(e: Event) => e.preventDefault()}>
      <label
        >Search
        <input
          type="search"
          name="q"
          value=${filter.text}
          placeholder="user id"
          onInput=${(e: Event) => set({ text: (e.target as HTMLInputElement).value })}
      /></label>
      <label
        >Status
        <select
          name="status"
          value=${filter.status}
          onChange=${(e: Event) => set({ status: (e.target as HTMLSelectElement).value as Status | '' })}
        >
          <option value="">any</option>
          ${STATUS_ORDER.map((s) => html`<option value=${s}>${STATUS_MARK[s]} ${s}</option>`)}
        </select>
      </label>
      <label
        >Platform
        <select
          name="platform"
          value=${filter.platform}
          onChange=${(e: Event) => set({ platform: (e.target as HTMLSelectElement).value })}
        >
          <option value="">any</option>
          ${ROW_PLATFORMS.map((p) => html`<option value=${p}>${p}</option>`)}
        </select>
      </label>
      <label class="check"
        ><input
          type="checkbox"
          name="stale"
          checked=${filter.staleOnly}
          onChange=${(e: Event) => set({ staleOnly: (e.target as HTMLInputElement).checked })}
        />
        stale only</label
      >
      <span class="shown">${shown.length} shown</span>
    </form>
    <div class="table-wrap">
      <table class="people">
        <caption class="visually-hidden">
          People and their presence, live
        </caption>
        <thead>
          <tr>
            <th scope="col">Person</th>
            <th scope="col">Status</th>
            <th scope="col">Available</th>
            <th scope="col">Reachable via</th>
            <th scope="col">Platforms: raw → status</th>
            <th scope="col">Fresh</th>
          </tr>
        </thead>
        <tbody>
          ${shown.map((row) => html`<${Row} key=${row.userId} row=${row} />`)}
        </tbody>
      </table>
    </div>
  </section>`;
}
