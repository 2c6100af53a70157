/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core) against the demo
 * started as the shipped `presence demo` process. Zoom runs for real there: the demo is given the
 * Zoom variables, so it polls a loopback fake Zoom API (with a fake Zoom OAuth server for its
 * Server-to-Server token) instead of simulating Zoom, and the test can take that platform down.
 *
 * Every wait is for a condition on the page or the API (generous limits), never for a duration.
 * A failing test leaves a screenshot of the page in the temporary folder it names. With
 * PRESENCE_DASHBOARD_SCREENSHOT set to a path, the people view is saved there too (that is how
 * docs/dashboard.png, shown in the README, is made).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

import type { Page } from 'playwright-core';

import { FakeOAuthServer } from '../helpers/fake-oauth';
import { FakeZoomApi } from '../helpers/fake-zoom';
import { fetchApi } from '../helpers/fetch-api';
import {
  launchBrowser,
  signIn as signInAt,
  WAIT,
  withScreenshot as shoot,
  type Browser,
} from './dashboard-browser';
import { BIN, cleanEnv, until } from './serve-process';

jest.setTimeout(180_000);

const USERS = 12;

let oauth: FakeOAuthServer;
let zoom: FakeZoomApi;
let demo: ChildProcess;
let demoExited: Promise<unknown>;
let base = '';
let key = '';
let ids: string[] = [];
let browser: Browser;
let page: Page;

const api = (method: string, path: string, body?: unknown) => fetchApi(base, key, method, path, body);

/** Runs a test's steps; on failure saves what the page showed, then fails with the same error. */
const withScreenshot = (name: string, steps: () => Promise<void>) => shoot(page, name, steps);
const signIn = (withKey: string) => signInAt(page, base, withKey);

beforeAll(async () => {
  oauth = await FakeOAuthServer.start({ flavor: 'zoom' });
  zoom = new FakeZoomApi(
    (t) => oauth.issued.access.includes(t),
    () => Date.now(),
  );
  await zoom.listen();
  demo = spawn(process.execPath, [BIN, 'demo', '--duration', '60m', '--users', String(USERS)], {
    env: cleanEnv({
      ...oauth.env,
      ZOOM_ACCOUNT_ID: 'acct-dashboard',
      ZOOM_API_URL: zoom.url,
      ZOOM_POLL_INTERVAL: '2s',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demoExited = new Promise((done) => demo.once('close', done));
  const lines = createInterface({ input: demo.stdout! });
  const intro: string[] = [];
  await new Promise<void>((done, fail) => {
    lines.on('line', (line) => {
      intro.push(line);
      const m = /^API (http:\/\/127\.0\.0\.1:\d+) {2}key (pk_\S+)$/.exec(line);
      if (m !== null) {
        base = m[1]!;
        key = m[2]!;
      }
      if (line.startsWith('dashboard ')) done();
    });
    void demoExited.then(() => fail(new Error(`the demo ended early:\n${intro.join('\n')}`)));
  });
  expect(intro).toContain(`dashboard ${base}/dashboard (sign in with the key above)`);
  expect(intro).toContain('zoom: the real connector (its variables are set), not simulated');

  // Everyone registered; each one's Zoom account answers on the fake, so Zoom's polls succeed.
  ids = await until(async () => {
    const r = await api('GET', '/v1/users');
    return r.body.total === USERS ? (r.body.user_ids as string[]) : null;
  }, 'the demo to register its people');
  for (const id of ids) {
    const user = (await api('GET', `/v1/users/${id}`)).body;
    for (const a of user.accounts as { platform: string; external_id: string }[])
      if (a.platform === 'zoom') zoom.statuses.set(a.external_id, 'Available');
  }

  browser = await launchBrowser();
  page = browser.page;
}, 240_000);

afterAll(async () => {
  await browser?.close();
  if (demo !== undefined && demo.exitCode === null) demo.kill('SIGTERM');
  await demoExited;
  await zoom?.close();
  await oauth?.close();
});

describe('the dashboard, in chromium, against the demo', () => {
  it('refuses a wrong key, and keeps nothing of it', async () => {
    await withScreenshot('wrong-key', async () => {
      await signIn('pk_0000000000000000_not-a-real-key-at-all');
      await page.getByRole('alert').filter({ hasText: 'This key was refused' }).waitFor(WAIT);
      expect(await page.evaluate('sessionStorage.length')).toBe(0);
      expect(await page.locator('tr[data-user]').count()).toBe(0);
    });
  });

  it('signs in with the key, keeps it in the tab, and shows every person live', async () => {
    await withScreenshot('sign-in', async () => {
      await signIn(key);
      await page.locator('text=stream ws').waitFor(WAIT);
      for (const id of ids) await page.locator(`tr[data-user="${id}"]`).waitFor(WAIT);
      expect(await page.locator('tr[data-user]').count()).toBe(USERS);
      expect(await page.evaluate("sessionStorage.getItem('presence.dashboard.key')")).toBe(key);
      // Each row: status by shape and word, each platform's raw value and what it maps to.
      const row = page.locator(`tr[data-user="${ids[0]}"]`);
      expect(await row.locator('.status .mark').first().textContent()).toMatch(/^[●◐⊘○·]$/);
      await row.locator('[data-platform="zoom"]').filter({ hasText: 'Available' }).waitFor(WAIT);
      if (process.env.PRESENCE_DASHBOARD_SCREENSHOT !== undefined)
        await page.screenshot({ path: process.env.PRESENCE_DASHBOARD_SCREENSHOT });
    });
  });

  it('shows a status change made through the API without reloading', async () => {
    await withScreenshot('live-change', async () => {
      const who = ids[1]!;
      await page.evaluate('window.marker = 42');
      const set = await api('PUT', `/v1/presence/${who}/override`, {
        status: 'busy',
        activity: 'focus',
        ttl_seconds: 3600,
      });
      expect(set.status).toBe(200);
      const row = page.locator(`tr[data-user="${who}"][data-status="busy"]`);
      await row.filter({ hasText: 'focus' }).waitFor(WAIT);
      // The same document: nothing reloaded it.
      expect(await page.evaluate('window.marker')).toBe(42);
    });
  });

  it("filters by status, and opens a person's timeline from history", async () => {
    await withScreenshot('timeline', async () => {
      const who = ids[1]!;
      await page.getByLabel('Status').selectOption('busy');
      await page.locator(`tr[data-user="${who}"]`).waitFor(WAIT);
      for (const status of await page
        .locator('tbody tr[data-user]')
        .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-status'))))
        expect(status).toBe('busy');
      await page.getByLabel('Status').selectOption('');

      await page.getByRole('link', { name: who, exact: true }).click();
      await page.getByRole('heading', { name: new RegExp(`^${who}`) }).waitFor(WAIT);
      // The chart draws the override's busy stretch, and the table lists the transition.
      await page.locator('svg.timeline rect.seg[data-status="busy"]').first().waitFor(WAIT);
      await page
        .locator('details.transitions tr[data-version]')
        .filter({ hasText: 'override' })
        .first()
        .waitFor(WAIT);
      await page.getByRole('heading', { name: 'Accounts' }).waitFor(WAIT);
      expect(await page.locator('text=zoom').count()).toBeGreaterThan(0);
    });
  });

  it('replays webhook deliveries from the delivery log', async () => {
    await withScreenshot('replay', async () => {
      await page.getByRole('link', { name: 'Operations' }).click();
      // From the oldest delivery shown on: every event since then is sent again.
      await page.locator('tr[data-delivery]').first().waitFor(WAIT);
      const id = await page.locator('tr[data-delivery]').last().getAttribute('data-delivery');
      await page.getByRole('button', { name: `Replay from delivery ${id}`, exact: true }).click();
      await page
        .getByRole('status')
        .filter({ hasText: /Replayed [1-9]\d* events?/ })
        .waitFor(WAIT);
      await page.locator('tr[data-delivery][data-replay="true"]').first().waitFor(WAIT);
      const log = (await api('GET', `/v1/webhooks`)).body.webhooks[0];
      const replayed = (await api('GET', `/v1/webhooks/${log.id}/deliveries?limit=1000`)).body.deliveries;
      expect(replayed.some((d: { replay: boolean }) => d.replay)).toBe(true);
    });
  });

  it('works from the keyboard alone, and fits a phone-width screen', async () => {
    await withScreenshot('keyboard-phone', async () => {
      // A fresh load of the page (the key is still in this tab), then Tab from the top: the skip
      // link first, then the views, on to a person's link.
      await page.goto(`${base}/dashboard#/people`);
      await page.reload(); // a hash change alone is the same document
      await page.locator('tr[data-user]').first().waitFor(WAIT);
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement.textContent')).toBe('Skip to content');
      const who = ids[2]!;
      let reached = false;
      for (let i = 0; i < 40 && !reached; i += 1) {
        await page.keyboard.press('Tab');
        reached = (await page.evaluate('document.activeElement.getAttribute("href")')) === `#/person/${who}`;
        if (!reached && i === 39) throw new Error(`Tab never reached ${who}'s link`);
      }
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: new RegExp(`^${who}`) }).waitFor(WAIT);
      await page.goBack();
      await page.locator(`tr[data-user="${who}"]`).waitFor(WAIT);

      // At 390 px each row is a card: nothing wider than the screen, every cell labelled.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.locator('tr[data-user]').first().waitFor(WAIT);
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      const label = `getComputedStyle(document.querySelector('tr[data-user="${who}"] td[data-label="Status"]'), '::before').content`;
      expect(await page.evaluate(label)).toBe('"Status"');
      await page.setViewportSize({ width: 1280, height: 800 });
    });
  });

  it("shows a connector's health change when its platform goes down", async () => {
    await withScreenshot('connector-down', async () => {
      await page.getByRole('link', { name: 'Operations' }).click();
      await page.locator('tr[data-platform="zoom"][data-health="ok"]').waitFor(WAIT);
      await zoom.close(); // the fake Zoom API stops answering: its polls now fail
      const down = page.locator('tr[data-platform="zoom"][data-health="down"]');
      await down.waitFor(WAIT);
      expect(await down.textContent()).toMatch(/request failed/);
      // The figures are on the same page, from /metrics.
      expect(await page.locator('[data-figure="tracked_users"] dd').textContent()).toBe(String(USERS));
    });
  });

  it('ran the whole time with no script error and no Content-Security-Policy violation', () => {
    expect(browser.problems).toEqual([]);
  });
});
