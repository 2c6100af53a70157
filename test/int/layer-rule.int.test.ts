/**
 * The layer rule in eslint.config.mjs fires: probe sources, linted through ESLint's Node API with
 * the project's own configuration (type-aware rules off) as if they sat at the given paths. A child process, because
 * ESLint loads its flat config with a dynamic import, which Jest's module sandbox does not run.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '../..');

interface Probe {
  readonly filePath: string;
  readonly code: string;
}

/** The `no-restricted-imports` messages ESLint gives each probe (and any parse failure: a probe that
 * does not parse must not pass as allowed), by probe. */
function restrictedImports(probes: readonly Probe[]): string[][] {
  const script = `
    const { ESLint } = require('eslint');
    const probes = JSON.parse(process.argv[1]);
    (async () => {
      // The probes are no files of the TypeScript project, so type-aware linting is off for them
      // (the layer rule needs no types); everything else is the project's configuration.
      const { configs } = require('typescript-eslint');
      const eslint = new ESLint({ cwd: ${JSON.stringify(ROOT)}, overrideConfig: [configs.disableTypeChecked] });
      const out = [];
      for (const p of probes) {
        const [r] = await eslint.lintText(p.code, { filePath: p.filePath });
        out.push(r.messages.filter((m) => m.ruleId === 'no-restricted-imports' || m.fatal).map((m) => m.message));
      }
      process.stdout.write(JSON.stringify(out));
    })().catch((e) => { console.error(e); process.exit(1); });
  `;
  const stdout = execFileSync(process.execPath, ['-e', script, JSON.stringify(probes)], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return JSON.parse(stdout) as string[][];
}

const use = (name: string): string => `\nexport const used = ${name};\n`;

describe('the ESLint layer rule', () => {
  const cases: { probe: Probe; banned: boolean }[] = [
    // core and normalizer: no I/O, directly or through a layer that does it
    {
      probe: {
        filePath: 'src/core/probe.ts',
        code: `import { readFileSync } from 'node:fs';${use('readFileSync')}`,
      },
      banned: true,
    },
    {
      probe: { filePath: 'src/core/probe.ts', code: `import * as net from 'net';${use('net')}` },
      banned: true,
    },
    {
      probe: {
        filePath: 'src/normalizer/probe.ts',
        code: `import Database from 'better-sqlite3';${use('Database')}`,
      },
      banned: true,
    },
    {
      probe: {
        filePath: 'src/normalizer/probe.ts',
        code: `import { request } from 'undici';${use('request')}`,
      },
      banned: true,
    },
    {
      probe: {
        filePath: 'src/core/probe.ts',
        code: `import type { FastifyInstance } from 'fastify';\nexport type F = FastifyInstance;\n`,
      },
      banned: true,
    },
    {
      probe: { filePath: 'src/core/probe.ts', code: `import { openDb } from '../store/db';${use('openDb')}` },
      banned: true,
    },
    // …while pure imports stay allowed
    {
      probe: {
        filePath: 'src/core/probe.ts',
        code: `import { createHmac } from 'node:crypto';${use('createHmac')}`,
      },
      banned: false,
    },
    {
      probe: {
        filePath: 'src/normalizer/probe.ts',
        code: `import { isLive } from './availability';${use('isLive')}`,
      },
      banned: false,
    },
    // connectors: neither the HTTP layer nor the engine nor Fastify
    {
      probe: {
        filePath: 'connectors/slack/probe.ts',
        code: `import { buildApp } from '../../src/http/app';${use('buildApp')}`,
      },
      banned: true,
    },
    {
      probe: {
        filePath: 'connectors/zoom/probe.ts',
        code: `import type { PresenceEngine } from '../../src/aggregator/engine';\nexport type E = PresenceEngine;\n`,
      },
      banned: true,
    },
    {
      probe: { filePath: 'connectors/probe.ts', code: `import fastify from 'fastify';${use('fastify')}` },
      banned: true,
    },
    {
      probe: {
        filePath: 'connectors/slack/probe.ts',
        code: `import { AppError } from '../../src/core/errors';${use('AppError')}`,
      },
      banned: false,
    },
    // src: never the demo
    {
      probe: {
        filePath: 'src/http/probe.ts',
        code: `import { runDemoCommand } from '../../demo/cli';${use('runDemoCommand')}`,
      },
      banned: true,
    },
    {
      probe: {
        filePath: 'src/core/probe.ts',
        code: `import { Table } from '../../demo/table';${use('Table')}`,
      },
      banned: true,
    },
  ];

  it('refuses each banned import and allows the others', () => {
    const found = restrictedImports(cases.map((c) => c.probe));
    const got = cases.map((c, i) => ({ ...c.probe, banned: found[i]!.length > 0 }));
    expect(got).toEqual(cases.map((c) => ({ ...c.probe, banned: c.banned })));
    // The message says which layer rule it is.
    expect(found[0]![0]).toMatch(/src\/core and src\/normalizer are pure/);
    expect(found[8]![0]).toMatch(/connectors\/ import neither the HTTP layer/);
    expect(found[12]![0]).toMatch(/must not depend on demo/);
  });
});
