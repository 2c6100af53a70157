/**
 * "The API by example" in the README, run as written: each curl line of the block becomes the same
 * request against the real app, every one must succeed, and each `"key":value` the line's comment
 * shows must be in the answer. So the example cannot promise what the service does not answer.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { InjectOptions } from 'fastify';

import { testApi, type TestApi } from '../helpers/http';

interface Step {
  line: string;
  method: string;
  url: string;
  body?: string;
  comment: string;
}

function exampleSteps(): Step[] {
  const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
  const after = readme.split('### The API by example')[1];
  expect(after).toBeDefined();
  const block = after!.split('```sh\n')[1]!.split('\n```')[0]!;
  const steps: Step[] = [];
  for (const raw of block.split('\n')) {
    if (!raw.startsWith('curl')) continue;
    const hash = raw.search(/\s#\s/);
    const comment = hash < 0 ? '' : raw.slice(hash).replace(/^\s#\s/, '');
    const command = hash < 0 ? raw : raw.slice(0, hash);
    for (const part of command.split(/;\s*(?=curl )/)) {
      const url = /\$H([^\s"']+)/.exec(part)?.[1];
      expect({ part, url }).toEqual({ part, url: expect.any(String) });
      const body = /-d '([^']*)'/.exec(part)?.[1];
      steps.push({
        line: part.trim(),
        method: /-X (\w+)/.exec(part)?.[1] ?? 'GET',
        url: url!,
        ...(body === undefined ? {} : { body }),
        comment,
      });
    }
  }
  return steps;
}

/** The `"key":value` pairs a comment shows with a plain value (objects elided with … are skipped). */
function shownPairs(comment: string): string[] {
  return [...comment.matchAll(/"\w+":(null|true|false|-?\d+|"[^"]*"|\[[^\]{}]*\])/g)].map((m) => m[0]);
}

describe('README: the API by example', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await testApi();
  });
  afterAll(async () => {
    await api.close();
  });

  it('answers every request as its comment says', async () => {
    const steps = exampleSteps();
    expect(steps.length).toBeGreaterThan(10);
    let checked = 0;
    for (const step of steps) {
      const options: InjectOptions = {
        method: step.method as InjectOptions['method'],
        url: step.url,
        ...(step.body === undefined
          ? {}
          : { payload: step.body, headers: { 'content-type': 'application/json' } }),
      };
      const res = await api.call(options);
      expect({ line: step.line, status: res.statusCode < 300 }).toEqual({ line: step.line, status: true });
      for (const pair of shownPairs(step.comment)) {
        expect({ line: step.line, pair, found: res.body.includes(pair) }).toEqual({
          line: step.line,
          pair,
          found: true,
        });
        checked += 1;
      }
    }
    // The availability line's promises are among those checked.
    expect(checked).toBeGreaterThanOrEqual(3);
  });
});
