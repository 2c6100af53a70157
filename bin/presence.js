#!/usr/bin/env node
// The `presence` command. In a checkout (the TypeScript sources are there) it runs them through
// tsx, so `npm install && npm run demo` needs no build step and an edit shows at once. An
// installed package ships no sources, only the JavaScript compiled into dist/ by `npm pack`, and
// runs that: tsx and TypeScript are development tools.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const sources = join(__dirname, '..', 'src', 'cli', 'main.ts');
let cli;
if (existsSync(sources)) {
  require('tsx/cjs');
  cli = require(sources);
} else {
  cli = require('../dist/src/cli/main.js');
}
cli.main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
