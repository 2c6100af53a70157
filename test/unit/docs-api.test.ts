/**
 * docs/api.md keeps up with the code it describes: every error code of the catalogue with its HTTP
 * status, every webhook event type, every status and activity of the vocabulary.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { ERROR_CODES, codeToStatus } from '../../src/core/errors';
import { ACTIVITIES, STATUSES } from '../../src/core/presence';
import { EVENT_TYPES } from '../../src/webhooks';

const doc = readFileSync(join(__dirname, '..', '..', 'docs/api.md'), 'utf8');

/** The table rows of a section: first cell → second cell. */
function rows(heading: string): Map<string, string> {
  const start = doc.indexOf(`\n${heading}\n`);
  expect(start).toBeGreaterThanOrEqual(0);
  const end = doc.indexOf('\n#', start + 1);
  const out = new Map<string, string>();
  const lines = doc.slice(start, end < 0 ? undefined : end).split('\n');
  lines.forEach((line, i) => {
    const cells = line.split('|').map((c) => c.trim());
    // A body row: not the header (the row above the |---| line) nor the separator.
    const header = lines[i + 1]?.startsWith('| ---') === true;
    if (!header && cells.length > 3 && cells[1]!.startsWith('`'))
      out.set(cells[1]!.replace(/`/g, ''), cells[2]!);
  });
  return out;
}

describe('docs/api.md', () => {
  it('lists every error code with its HTTP status, and no other', () => {
    const table = rows('## Errors');
    expect([...table.keys()].sort()).toEqual([...ERROR_CODES].sort());
    for (const code of ERROR_CODES)
      expect(`${code} ${table.get(code)}`).toBe(`${code} ${codeToStatus(code)}`);
  });

  it('lists every webhook event type, and no other', () => {
    expect([...rows('### Events').keys()].sort()).toEqual([...EVENT_TYPES].sort());
  });

  it('names every status and activity', () => {
    for (const word of [...STATUSES, ...ACTIVITIES]) expect(doc).toContain(`\`${word}\``);
  });
});
