/**
 * The README's Configuration section names every environment variable the code reads (the env
 * schema, plus the few the CLI reads directly), and names no variable that does not exist.
 */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { ENV_VARIABLES } from '../../src/config/env';

const ROOT = join(__dirname, '..', '..');

function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n${heading}\n`);
  expect(start).toBeGreaterThanOrEqual(0);
  const next = markdown.indexOf('\n## ', start + heading.length + 2);
  const nextSub = markdown.indexOf('\n### ', start + heading.length + 2);
  const ends = [next, nextSub].filter((i) => i >= 0);
  return markdown.slice(start, ends.length > 0 ? Math.min(...ends) : undefined);
}

/** `process.env.NAME` reads outside the env schema (the CLI's PRESENCE_URL, …). */
function directReads(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...directReads(path));
    else if (name.endsWith('.ts')) {
      for (const m of readFileSync(path, 'utf8').matchAll(/process\.env\.([A-Z][A-Z0-9_]*)/g))
        out.push(m[1]!);
    }
  }
  return out;
}

describe('README configuration', () => {
  const config = section(readFileSync(join(ROOT, 'README.md'), 'utf8'), '### Configuration');
  const code = [
    ...new Set([
      ...ENV_VARIABLES,
      ...['src', 'connectors', 'demo'].flatMap((d) => directReads(join(ROOT, d))),
    ]),
  ];

  it('names every variable the code reads', () => {
    expect(code).toContain('PRESENCE_INFERRED_DECAY');
    expect(code).toContain('PRESENCE_URL');
    const missing = code.filter((name) => !config.includes(`\`${name}\``));
    expect(missing).toEqual([]);
  });

  it('names no variable the code does not read', () => {
    const named = [...config.matchAll(/`([A-Z][A-Z0-9]*_[A-Z0-9_]+|PORT|HOST)`/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(40);
    expect(named.filter((name) => !code.includes(name))).toEqual([]);
  });
});
