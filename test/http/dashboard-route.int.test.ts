/**
 * `GET /dashboard` on the real app: the page, its script (the dashboard's sources bundled with the
 * stream client) and its styles, each under the strict Content-Security-Policy, with no key, and
 * nothing inline for the policy to refuse.
 */

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { buildDashboard, DASHBOARD_CSP, loadDashboard } from '../../src/http/routes/dashboard';
import { testApi, type TestApi } from '../helpers/http';

describe('the dashboard route', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await testApi();
  });
  afterAll(() => api.close());

  it('serves the page, its script and its styles without a key, under the policy', async () => {
    const page = await api.call({ method: 'GET', url: '/dashboard', key: null });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(DASHBOARD_CSP);
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.body).toContain('<script defer src="/dashboard/app.js"></script>');
    // Nothing inline: no <script> with a body, no <style>, no style attribute.
    expect(page.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(page.body).not.toMatch(/<style|\sstyle=/);

    const js = await api.call({ method: 'GET', url: '/dashboard/app.js', key: null });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    // The stream client is in the bundle (its endpoint and its resume logic), and no module syntax is left.
    expect(js.body).toContain('/v1/ws');
    expect(js.body).toContain('presence.dashboard.key');
    expect(js.body).not.toMatch(/^import |\brequire\(/m);

    const css = await api.call({ method: 'GET', url: '/dashboard/app.css', key: null });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(css.body).toContain('@media (max-width: 700px)');
  });

  it('the policy allows only this origin: no inline code, no framing, no other hosts', () => {
    expect(DASHBOARD_CSP).toContain("default-src 'self'");
    expect(DASHBOARD_CSP).toContain("script-src 'self'");
    expect(DASHBOARD_CSP).toContain("style-src 'self'");
    expect(DASHBOARD_CSP).toContain("connect-src 'self'");
    expect(DASHBOARD_CSP).toContain("frame-ancestors 'none'");
    expect(DASHBOARD_CSP).not.toMatch(/unsafe|\*|https?:/);
  });

  it('builds for a package (dist/dashboard) what a checkout bundles on request', async () => {
    const out = mkdtempSync(join(tmpdir(), 'dashboard-build-'));
    try {
      await buildDashboard(join(__dirname, '..', '..'), join(out, 'dashboard'));
      expect(readdirSync(join(out, 'dashboard')).sort()).toEqual(['app.css', 'app.js', 'index.html']);
      const built = await loadDashboard(out); // no sources there: read as built
      const checkout = await loadDashboard(join(__dirname, '..', '..'));
      expect(built).toEqual(checkout);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
