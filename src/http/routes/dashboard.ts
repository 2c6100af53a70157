/**
 * @module http/routes/dashboard
 * `GET /dashboard`: the operator's web page, served by the service itself with every asset from
 * the package (no CDN), under a strict Content-Security-Policy (no inline script or style,
 * everything from this origin, the stream included). The page signs in with an API key in the
 * browser, so these routes take none.
 *
 * The page is TypeScript in `dashboard/` (Preact + htm, and the project's own stream client).
 * In a checkout it is bundled with esbuild on first request, so `npm run demo` shows an edit at
 * once and nothing needs building by hand; an installed package has no sources and serves the
 * bundle `npm run build` wrote to `dist/dashboard/` (scripts/build.js calls `buildDashboard`).
 */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import type { FastifyInstance, FastifyReply } from 'fastify';

/** The checkout's root, or `dist/` in an installed package (this file is three folders down in both). */
const ROOT = resolve(__dirname, '..', '..', '..');

export interface DashboardAssets {
  readonly html: string;
  readonly js: string;
  readonly css: string;
}

/**
 * The page's policy: scripts, styles and connections (fetch, the WebSocket and SSE stream) from
 * this origin only; no inline code, no plugins, no framing, no base or form target elsewhere.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The page's script: the sources in `dir/src` bundled for the browser (one minified IIFE). */
export async function bundleDashboard(dir: string): Promise<string> {
  // esbuild is a development tool: loaded only where the sources are (a checkout, the build).
  const esbuild = await import('esbuild');
  const out = await esbuild.build({
    entryPoints: [join(dir, 'src', 'main.ts')],
    tsconfig: join(dir, 'tsconfig.json'),
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const file = out.outputFiles[0];
  if (file === undefined) throw new Error('esbuild wrote no bundle');
  return file.text;
}

/** Writes the page (HTML, CSS, bundled script) into `outDir`: the build's step for `dist/dashboard`. */
export async function buildDashboard(sourceRoot: string, outDir: string): Promise<void> {
  const dir = join(sourceRoot, 'dashboard');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'index.html'), readFileSync(join(dir, 'index.html')));
  writeFileSync(join(outDir, 'app.css'), readFileSync(join(dir, 'app.css')));
  writeFileSync(join(outDir, 'app.js'), await bundleDashboard(dir));
}

/** The page's files: bundled from the sources in a checkout, read as built in a package. */
export async function loadDashboard(root: string = ROOT): Promise<DashboardAssets> {
  const dir = join(root, 'dashboard');
  const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
  const js = existsSync(join(dir, 'src', 'main.ts')) ? await bundleDashboard(dir) : read('app.js');
  return { html: read('index.html'), css: read('app.css'), js };
}

function secured(reply: FastifyReply, type: string): FastifyReply {
  return reply
    .type(type)
    .header('content-security-policy', DASHBOARD_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cache-control', 'no-cache');
}

export function dashboardRoutes(
  app: FastifyInstance,
  load: () => Promise<DashboardAssets> = () => loadDashboard(),
): void {
  // Loaded (bundled) once, on first request; a failed bundle is tried again next time.
  let assets: Promise<DashboardAssets> | null = null;
  const get = (): Promise<DashboardAssets> => {
    assets ??= load().catch((error: unknown) => {
      assets = null;
      throw error;
    });
    return assets;
  };
  const hide = { schema: { hide: true } };
  app.get('/dashboard', hide, async (_req, reply) =>
    secured(reply, 'text/html; charset=utf-8').send((await get()).html),
  );
  app.get('/dashboard/app.js', hide, async (_req, reply) =>
    secured(reply, 'text/javascript; charset=utf-8').send((await get()).js),
  );
  app.get('/dashboard/app.css', hide, async (_req, reply) =>
    secured(reply, 'text/css; charset=utf-8').send((await get()).css),
  );
}
