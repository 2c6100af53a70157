// ESLint flat config, type-aware: the floating-promise rule matters for pollers and the outbox loop.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layer rule. Each layer names the imports it may not make; flat config does not merge the
 * options of one rule across blocks, so every block repeats the bans of the layers it sits in
 * (core and normalizer are inside src, so they carry src's ban too).
 */
function layerRules() {
  const ban = (group, message) => ({ group, message });
  // The demo is a program on top of the library, never a part of it.
  const noDemo = ban(
    ['**/demo', '**/demo/**'],
    'src/ must not depend on demo/ (the demo is built on src, not in it).',
  );
  // Pure layers: no files, sockets, databases or HTTP, directly or through the layers that do them.
  const noIo = ban(
    [
      ...[
        'fs',
        'net',
        'tls',
        'http',
        'https',
        'http2',
        'dgram',
        'dns',
        'child_process',
        'cluster',
        'worker_threads',
      ].flatMap((m) => [m, `${m}/*`, `node:${m}`, `node:${m}/*`]),
      'better-sqlite3',
      'undici',
      'fastify',
      '@fastify/*',
      'pino',
      'ws',
      'ioredis',
      'node-cron',
      'discord.js',
      '@slack/*',
      '@microsoft/*',
      'simple-oauth2',
      '**/store',
      '**/store/**',
      '**/http',
      '**/http/**',
      '**/aggregator',
      '**/aggregator/**',
      '**/oauth',
      '**/oauth/**',
      '**/webhooks',
      '**/webhooks/**',
      '**/connectors',
      '**/connectors/**',
    ],
    'src/core and src/normalizer are pure: no I/O (files, network, databases, HTTP) and none of the layers that do it.',
  );
  // A connector talks to its platform and reports through the ports it is given.
  const connectorBan = ban(
    [
      '**/src/http',
      '**/src/http/**',
      '**/src/aggregator',
      '**/src/aggregator/**',
      'fastify',
      'fastify/*',
      '@fastify/*',
      'fastify-type-provider-zod',
    ],
    'connectors/ import neither the HTTP layer (routes live in src/http/routes) nor the engine (report through the port given).',
  );
  const rule = (...patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });
  return [
    { files: ['src/**/*.ts'], rules: rule(noDemo) },
    { files: ['src/core/**/*.ts', 'src/normalizer/**/*.ts'], rules: rule(noDemo, noIo) },
    { files: ['connectors/**/*.ts'], rules: rule(connectorBan) },
    // The one exception: `presence demo` is a CLI command, and the CLI entry is the program's outer
    // shell (it is what starts the demo). Nothing else under src/ may reach into demo/.
    { files: ['src/cli/main.ts'], rules: rule() },
  ];
}

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      'coverage/**',
      'data/**',
      'bin/**',
      'scripts/**',
      '*.config.js',
      '*.config.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  ...layerRules(),
  {
    // Tests, the demo's terminal output, the CLI and benchmarks print on purpose.
    files: ['test/**', 'bench/**', 'demo/**', 'src/cli/**'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['test/**'],
    rules: {
      // Tests read parsed JSON bodies; typing each one would add noise, not safety.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      'no-control-regex': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
