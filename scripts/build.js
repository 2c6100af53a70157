#!/usr/bin/env node
// `npm run build` (and `npm pack`, through prepack): compiles to dist/ with type declarations,
// from a clean folder so that a deleted source never ships, and copies the SQL migrations next to
// the compiled store (src/store/db.ts finds them two folders up from itself, in dist/ as in the
// checkout). It also writes the dashboard (dashboard/: its page, styles and the script bundled with
// esbuild) to dist/dashboard, where an installed package serves it from; a checkout bundles the
// sources on request instead (src/http/routes/dashboard.ts, whose buildDashboard this calls).
'use strict';
const { execFileSync } = require('node:child_process');
const { cpSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
execFileSync(
  process.execPath,
  [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')],
  {
    stdio: 'inherit',
  },
);
cpSync(join(root, 'migrations'), join(dist, 'migrations'), { recursive: true });
// The compiled route module holds the one definition of the bundle (entry, target, options).
require(join(dist, 'src', 'http', 'routes', 'dashboard.js'))
  .buildDashboard(root, join(dist, 'dashboard'))
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
