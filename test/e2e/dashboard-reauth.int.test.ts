/**
 * The dashboard's "Connections needing re-authorization" in a real browser (Debian's chromium,
 * driven by playwright-core) against the shipped `presence serve` process, with LinkedIn's OAuth
 * settings pointing at the loopback fake LinkedIn OAuth server. LinkedIn gives no refresh token,
 * so when the fake's short-lived access token has expired, the service's own refresh sweep moves
 * the connection to reauth_required; the page lists it, and its button starts the OAuth flow in a
 * new tab, which the fake answers and the service's callback completes.
 *
 * PUBLIC_URL is the service's own loopback address (a port picked in advance), so the whole flow
 * stays on 127.0.0.1. Every wait is for a condition (the sweep runs once a minute on the wall
 * clock, so the limits are generous), never for a duration.
 */

import { FakeOAuthServer } from '../helpers/fake-oauth';
import { freePort } from '../helpers/free-port';
import { launchBrowser, signIn, WAIT, withScreenshot, type Browser } from './dashboard-browser';
import { startServe, until, type ServeProcess } from './serve-process';

jest.setTimeout(300_000);

/** The sweep may take up to a minute to run, then the page polls the connections every 10 s. */
const SWEEP_WAIT = { timeout: 180_000 };
const SUB = 'li-sub-reauth-9Qx';

let oauth: FakeOAuthServer;
let svc: ServeProcess;
let browser: Browser;
let connectionId = '';

beforeAll(async () => {
  // An access token of 2 s and no refresh token: the grant ends almost at once.
  oauth = await FakeOAuthServer.start({ flavor: 'linkedin', user: { id: SUB }, accessTtlSec: 2 });
  const port = await freePort();
  svc = await startServe({
    env: { ...oauth.env, PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` },
  });
  expect(svc.base).toBe(`http://127.0.0.1:${port}`);

  // lee connects once, outside the browser: the service's authorize URL, the fake, the callback.
  expect((await svc.api('PUT', '/v1/users/lee', {})).status).toBeLessThan(300);
  const start = await fetch(`${svc.base}/v1/connect/linkedin?user_id=lee`, {
    headers: { authorization: `Bearer ${svc.key}`, accept: 'application/json' },
  });
  expect(start.status).toBe(200);
  const query = await oauth.authorize(((await start.json()) as { url: string }).url);
  const back = await fetch(
    `${svc.base}/v1/connect/linkedin/callback?${new URLSearchParams(query).toString()}`,
  );
  expect(back.status).toBe(200);
  connectionId = ((await back.json()) as { id: string }).id;

  browser = await launchBrowser();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  await oauth?.close();
});

describe('the dashboard, in chromium, against serve with LinkedIn OAuth on a fake', () => {
  it('lists a connection needing re-authorization, and its button runs the OAuth flow in a new tab', async () => {
    const { page, context } = browser;
    await withScreenshot(page, 'reauth', async () => {
      // The service itself finds the grant ended (its sweep), not the test.
      await until(
        async () => {
          const r = await svc.api('GET', `/v1/connections/${connectionId}`);
          return r.body.health === 'reauth_required';
        },
        'the sweep to mark the connection reauth_required',
        SWEEP_WAIT.timeout,
      );

      await signIn(page, svc.base, svc.key);
      await page.getByRole('link', { name: 'Operations' }).click();
      const section = page.getByRole('region', { name: 'Connections needing re-authorization' });
      const item = section.locator(`li[data-connection="${connectionId}"]`);
      await item.filter({ hasText: 'reauth_required' }).waitFor(SWEEP_WAIT);
      expect(await item.textContent()).toContain(SUB);
      expect(await item.textContent()).toContain('lee');

      // The next grant lasts 60 days: once re-authorized, nothing is left to list.
      oauth.accessTtlSec = 5_184_000;
      const authorize = context.waitForEvent('request', {
        predicate: (r) => r.url().startsWith(`${oauth.url}/oauth/v2/authorization?`),
        ...WAIT,
      });
      const popup = context.waitForEvent('page', WAIT);
      await item.getByRole('button', { name: 'Re-authorize linkedin', exact: true }).click();

      const url = new URL((await authorize).url());
      expect(url.searchParams.get('client_id')).toBe(oauth.clientId);
      expect(url.searchParams.get('response_type')).toBe('code');
      expect(url.searchParams.get('redirect_uri')).toBe(`${svc.base}/v1/connect/linkedin/callback`);
      expect(url.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{20,}$/);

      // The new tab follows the fake's redirect to the service's callback, which links lee again.
      const tab = await popup;
      await tab.getByRole('heading', { name: 'Connected' }).waitFor(WAIT);
      expect(tab.url().startsWith(`${svc.base}/v1/connect/linkedin/callback?`)).toBe(true);
      expect(await tab.locator('p').textContent()).toBe(
        `linkedin account ${SUB} is now linked to lee. You can close this window.`,
      );
      expect(oauth.callsTo('token')).toHaveLength(2);
      const after = (await svc.api('GET', `/v1/connections/${connectionId}`)).body;
      expect(after).toMatchObject({ health: 'ok', expires_soon: false });
      await tab.close();

      // The page's next poll finds every connection healthy.
      await section.getByText('None: every connection is healthy.').waitFor(WAIT);
      expect(browser.problems).toEqual([]);
    });
  });
});
