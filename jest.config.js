/**
 * Two projects: `unit` (*.test.ts, pure and fast) and `int` (*.int.test.ts: real SQLite files,
 * child processes, loopback servers). `npm test` runs both.
 */
const transform = { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', isolatedModules: true }] };
const common = { testEnvironment: 'node', transform };

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/**/*.test.ts', '!<rootDir>/test/**/*.int.test.ts'] },
    { ...common, displayName: 'int', testMatch: ['<rootDir>/test/**/*.int.test.ts'] },
  ],
};
