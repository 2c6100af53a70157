/**
 * Nothing in the repository sends a reader to a file it lacks: every relative `.md` path that a
 * file mentions (a Markdown link, or a path in a comment) exists, and no file cites the product
 * documents that live outside the repository. The project's own reference is docs/api.md and the
 * connector READMEs.
 */

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', 'coverage', 'data']);
const SKIP_FILES = new Set(['package-lock.json']);
/** Built here rather than written out, so that this file does not cite them itself. */
const OUTSIDE = ['CONTRACT', 'PLATFORMS'].map((name) => `${name}.md`);

/** A path ending in .md that starts a token: not the tail of a URL, a glob or a placeholder. */
const MD_PATH = /(?<![\w./<>{}*$@:-])((?:\.{1,2}\/)*[\w][\w./-]*\.md)(?![\w])/g;

/** Every file of the repository but this one, whose examples above are not references. */
function repoFiles(dir = ROOT): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) {
      if (!SKIP_DIRS.has(name)) out.push(...repoFiles(path));
    } else if (!SKIP_FILES.has(name) && path !== __filename && stat.size < 2_000_000) {
      out.push(path);
    }
  }
  return out;
}

function text(path: string): string | null {
  const buf = readFileSync(path);
  return buf.includes(0) ? null : buf.toString('utf8');
}

/** Each `file:line: reference` whose target is missing from both the file's folder and the root. */
function brokenReferences(files: readonly string[]): string[] {
  const broken: string[] = [];
  for (const file of files) {
    const content = text(file);
    if (content === null) continue;
    content.split('\n').forEach((line, i) => {
      for (const m of line.matchAll(MD_PATH)) {
        const target = m[1]!;
        const found = existsSync(join(dirname(file), target)) || existsSync(join(ROOT, target));
        if (!found) broken.push(`${relative(ROOT, file)}:${i + 1}: ${target}`);
      }
    });
  }
  return broken;
}

describe('references in the repository', () => {
  const files = repoFiles();

  it('scans the repository (sources, tests, docs, connector READMEs)', () => {
    const names = files.map((f) => relative(ROOT, f));
    expect(names).toContain('README.md');
    expect(names).toContain(join('docs', 'api.md'));
    expect(names).toContain(join('connectors', 'slack', 'README.md'));
    expect(names).toContain(join('src', 'main.ts'));
    expect(names.some((n) => n.startsWith('node_modules'))).toBe(false);
  });

  it('finds the kinds of reference it checks, and flags a missing target', () => {
    expect(
      [...'see [the API](docs/api.md#errors) and ../README.md'.matchAll(MD_PATH)].map((m) => m[1]),
    ).toEqual(['docs/api.md', '../README.md']);
    // Not references: a URL's path, a glob, a placeholder.
    expect([
      ...'https://example.com/x.md connectors/*/README.md connectors/<platform>/README.md'.matchAll(MD_PATH),
    ]).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), 'docs-links-'));
    try {
      const file = join(dir, 'sample.md');
      writeFileSync(file, 'Read [the API](docs/api.md) first.\nThen docs/no-such-file.md.\n');
      expect(brokenReferences([file]).map((b) => b.replace(/^.*sample\.md/, 'sample.md'))).toEqual([
        'sample.md:2: docs/no-such-file.md',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sends no reader to a .md file the repository lacks', () => {
    expect(brokenReferences(files)).toEqual([]);
  });

  it('cites no document kept outside the repository', () => {
    const citing: string[] = [];
    for (const file of files) {
      const content = text(file);
      if (content === null) continue;
      content.split('\n').forEach((line, i) => {
        for (const name of OUTSIDE) if (line.includes(name)) citing.push(`${relative(ROOT, file)}:${i + 1}`);
      });
    }
    expect(citing).toEqual([]);
  });
});

describe('connector READMEs', () => {
  const connectors = readdirSync(join(ROOT, 'connectors')).filter((d) =>
    existsSync(join(ROOT, 'connectors', d, 'README.md')),
  );

  it('exist for every real platform', () => {
    expect(connectors.sort()).toEqual(['discord', 'linkedin', 'slack', 'teams', 'whatsapp', 'zoom']);
  });

  it.each(connectors)('%s: has its platform facts and ends with "Check that it works"', (name) => {
    const readme = readFileSync(join(ROOT, 'connectors', name, 'README.md'), 'utf8');
    expect(readme).toContain('\n## Platform facts\n');
    const headings = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    expect(headings[headings.length - 1]).toBe('Check that it works');
  });
});
