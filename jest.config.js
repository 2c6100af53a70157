/**
 * Three projects: `unit` (*.test.ts, pure and fast), `contract` (test/contract/: every connector
 * fixture replayed through the code that reads it; pure too) and `int` (*.int.test.ts: real
 * SQLite files, child processes, loopback servers). `npm test` runs all three.
 */
const transform = { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] };

/** @type {import('jest').Config} */
module.exports = {
  // Tests never race the wall clock (time is a FakeClock; waits are for conditions), so this only
  // bounds a test that is stuck. It is generous because the machine may be busy: a test doing a
  // fixed amount of real I/O (child processes, a thousand loopback requests) can take many times
  // longer under load than alone, and must still pass.
  testTimeout: 180_000,
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '\\.int\\.test\\.ts$', '<rootDir>/test/contract/'],
    },
    {
      displayName: 'contract',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/contract/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '\\.int\\.test\\.ts$'],
    },
    {
      displayName: 'int',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/**/*.int.test.ts'],
    },
  ],
};
