#!/usr/bin/env node
// The `presence` command. Runs the TypeScript sources through tsx, so that an install needs no
// build step.
require('tsx/cjs');
require('../src/cli/main.ts')
  .main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
