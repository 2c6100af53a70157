/**
 * @module test/e2e/dashboard-browser
 * The browser side of the dashboard's end-to-end tests: Debian's chromium driven by
 * playwright-core in a fresh profile, what it reports (console errors, script errors), and a
 * screenshot of the page when a test's steps fail.
 */

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium, type BrowserContext, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
/** How long a page condition may take on a loaded machine before the test fails. */
export const WAIT = { timeout: 90_000 };
export const FAILURES = join(tmpdir(), 'presence-dashboard-failures');

export interface Browser {
  readonly context: BrowserContext;
  readonly page: Page;
  /**
   * What the browser reported: console errors (Content-Security-Policy violations among them; a
   * refused key's 401 left out) and script errors.
   */
  readonly problems: string[];
  close(): Promise<void>;
}

/** Starts headless chromium in a temporary profile, with one page open. */
export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'presence-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on('console', (m) => {
    // A refused key is answered 401 on purpose; the browser logs that load.
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  return {
    context,
    page,
    problems,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Runs a test's steps; on failure saves what the page showed, then fails with the same error. */
export async function withScreenshot(page: Page, name: string, steps: () => Promise<void>): Promise<void> {
  try {
    await steps();
  } catch (error) {
    mkdirSync(FAILURES, { recursive: true });
    const path = join(FAILURES, `${name}.png`);
    await page.screenshot({ path, fullPage: true }).catch(() => undefined);
    (error as Error).message += `\n(screenshot of the page: ${path})`;
    throw error;
  }
}

/** Opens the dashboard at `base` and signs in with `key`. */
export async function signIn(page: Page, base: string, key: string): Promise<void> {
  await page.goto(`${base}/dashboard`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
