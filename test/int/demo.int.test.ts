import { createHash } from 'node:crypto';

import { SimulatedWorld } from '../../connectors/simulated';
import { runDemo, type Screen } from '../../demo/cli';
import { httpSource, type Api } from '../../demo/source';
import { visible } from '../../demo/table';

const CHANGE = /^\d\d:\d\d:\d\d \S+\s+v\d+ /;

interface Frame {
  readonly columns: number;
  readonly rows: number;
  /** The frame began by clearing the screen. */
  readonly cleared: boolean;
  /** Its lines, without terminal codes. */
  readonly lines: string[];
}

/** A terminal of a given size that keeps every frame drawn on it (one write each). */
function fakeTerminal(columns: number, rows: number) {
  let size = { columns, rows };
  let redraw: (() => void) | null = null;
  const frames: Frame[] = [];
  const screen: Screen = {
    columns: () => size.columns,
    rows: () => size.rows,
    onResize: (cb) => {
      redraw = cb;
      return () => {
        redraw = null;
      };
    },
  };
  return {
    screen,
    frames,
    write(t: string): void {
      const home = t.indexOf('\u001b[H');
      if (home < 0) return;
      const lines = t
        .slice(home + 3)
        .replace(/\u001b\[J$/, '')
        .split('\r\n')
        .map((l) => l.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, ''));
      frames.push({ ...size, cleared: t.slice(0, home).includes('\u001b[2J'), lines });
    },
    resize(c: number, r: number): void {
      size = { columns: c, rows: r };
      redraw?.();
    },
    get subscribed(): boolean {
      return redraw !== null;
    },
  };
}

/** How many terminal rows the lines take at `width`. */
const rowsTaken = (lines: readonly string[], width: number): number =>
  lines.reduce((n, l) => n + Math.max(1, Math.ceil(visible(l) / width)), 0);

describe('presence demo', () => {
  it('runs non-interactively: all six platforms, changing states, availability, a clean end', async () => {
    let out = '';
    const abort = new AbortController();
    const reporters = ['device', 'discord', 'slack', 'teams', 'whatsapp', 'zoom'];
    const summary = await runDemo({
      users: 12,
      // Ended once enough has happened, however slow the machine: the duration is only a bound.
      durationMs: 600_000,
      speed: 120,
      seed: 1,
      tty: false,
      frameMs: 100,
      signal: abort.signal,
      write: (t) => {
        out += t;
        const changes = out.split('\n').filter((l) => CHANGE.test(l));
        if (changes.length > 12 && reporters.every((p) => changes.some((l) => l.includes(` ${p} `))))
          abort.abort();
      },
    });
    expect(summary.platforms).toEqual(['device', 'discord', 'slack', 'teams', 'whatsapp', 'zoom']);
    expect(summary.changes).toBeGreaterThan(12);
    expect(out).not.toContain('\u001b[');
    const lines = out.split('\n');
    // The API's URL, key and a curl example come first, whole.
    expect(lines[1]).toMatch(/^API http:\/\/127\.0\.0\.1:\d+ {2}key pk_\S+$/);
    expect(lines[2]).toMatch(
      /^try: curl -H 'Authorization: Bearer pk_\S+' 'http:\/\/127\.0\.0\.1:\d+\/v1\/availability\?user_ids=alice,bob'$/,
    );
    const head = lines.find((l) => l.startsWith('USER'))!;
    for (const p of [
      'AVAILABLE',
      'REACHABLE VIA',
      'SLACK',
      'TEAMS',
      'DISCORD',
      'ZOOM',
      'WHATSAPP',
      'LINKEDIN',
    ])
      expect(head).toContain(p);
    expect(out).toContain('identity only');
    expect(out).toMatch(/^alice\s+\S \w+\s+[✓✗] /m);
    // Change lines say what changed: never "x → x" with nothing else.
    const changes = lines.filter((l) => CHANGE.test(l));
    expect(changes.length).toBeGreaterThan(12);
    expect(changes.some((l) => / v[2-9]\d* /.test(l))).toBe(true);
    for (const l of changes) expect(l).not.toMatch(/([●◐⊘○·] \w+) → \1(?!\w)/);
    expect(out).toMatch(/demo ended: \d+ presence changes/);
  }, 60_000);

  it('on a 100×30 terminal every frame fits, the header is whole, and a resize redraws to the new size', async () => {
    const term = fakeTerminal(100, 30);
    const abort = new AbortController();
    const summary = await runDemo({
      users: 50,
      // Ended by the frame count below, however slow the machine: the duration is only a bound.
      durationMs: 600_000,
      speed: 30,
      seed: 2,
      tty: true,
      frameMs: 50,
      screen: term.screen,
      signal: abort.signal,
      write: (t) => {
        term.write(t);
        // Resize once the table has been drawn a while; stop after as many frames at the new size.
        const drawn = term.frames.filter((f) => f.lines.some((l) => l.startsWith('USER'))).length;
        if (drawn === 10 && term.screen.columns() === 100) term.resize(80, 24);
        if (drawn === 20) abort.abort();
      },
    });
    expect(term.subscribed).toBe(false); // the resize listener is removed at the end
    expect(summary.changes).toBeGreaterThan(0);
    const frames = term.frames;
    for (const f of frames) {
      expect(rowsTaken(f.lines, f.columns)).toBeLessThanOrEqual(f.rows);
      expect(f.lines[0]).toMatch(/^presence demo: 50 simulated people/);
      // The URL, key and curl example are whole (the terminal wraps them); everything else fits.
      expect(f.lines[2]).toMatch(
        /^try: curl -H 'Authorization: Bearer pk_\S+' 'http:\/\/127\.0\.0\.1:\d+\/v1\/availability\?user_ids=alice,bob'$/,
      );
      for (const l of f.lines.slice(4)) expect(visible(l)).toBeLessThanOrEqual(f.columns);
    }
    const tables = frames.filter((f) => f.lines.some((l) => l.startsWith('USER')));
    const wide = tables.filter((f) => f.columns === 100);
    const narrow = tables.filter((f) => f.columns === 80);
    expect(wide.length).toBeGreaterThanOrEqual(10);
    expect(narrow.length).toBeGreaterThanOrEqual(9);
    expect(wide[0]!.lines).toContainEqual(
      expect.stringMatching(/^USER\s+STATUS\s+AVAILABLE\s+REACHABLE VIA\s.*SL TM DC ZM WA LI DV/),
    );
    // The resize cleared the screen and drew again at once, at the new size.
    const firstNarrow = frames.findIndex((f) => f.columns === 80);
    expect(frames[firstNarrow]!.cleared).toBe(true);
    const last = narrow.at(-1)!;
    // 50 people do not fit: the rest are counted, and the change lines keep their room.
    expect(last.lines).toContainEqual(expect.stringMatching(/^\+\d+ more$/));
    expect(last.lines).toContain('recent changes:');
    expect(last.lines.at(-1)).toMatch(CHANGE);
    // A line saying how long is left.
    expect(last.lines).toContainEqual(expect.stringMatching(/^\d+:\d\d left of 10:00 · /));
  }, 300_000);

  it('pages its reads through the API at 1,001 people, never over the 1,000-id limit', async () => {
    const sizes: number[] = [];
    const spy =
      (api: Api): Api =>
      (method, path, body) => {
        if (path.startsWith('/v1/availability'))
          sizes.push(new URL(path, 'http://x').searchParams.get('user_ids')!.split(',').length);
        if (path === '/v1/presence/query') sizes.push((body as { user_ids: string[] }).user_ids.length);
        return api(method, path, body);
      };
    let out = '';
    await runDemo({
      users: 1001,
      durationMs: 500,
      speed: 10,
      seed: 1,
      tty: false,
      frameMs: 100,
      source: (api) => httpSource(spy(api)),
      write: (t) => {
        out += t;
      },
    });
    expect(Math.max(...sizes)).toBe(1000);
    expect(sizes).toContain(1);
    const rows = out.split('\n').filter((l) => /^[a-z]+\d*\s+\S \w+\s+[✓✗…]/.test(l));
    expect(rows).toHaveLength(1001);
    expect(out).toMatch(/^erin84\s/m); // the 1,001st person (ids cycle through 12 names)
  }, 300_000);
});

describe('the simulated day', () => {
  const T = Date.UTC(2030, 0, 7, 9);
  const SECOND = 1000;

  it.each([1, 2, 3, 7, 42])(
    'seed %i: every platform reports within the first 8 s, and people change state all through a minute',
    (seed) => {
      const w = new SimulatedWorld({ seed, users: 12, start: T });
      const first = w.advanceTo(T + 8 * SECOND);
      expect([...new Set(first.map((e) => e.kind))]).toEqual(
        expect.arrayContaining(['slack', 'teams', 'discord', 'zoom', 'whatsapp', 'heartbeat']),
      );
      // Someone changes what they are doing in every 10 s of the first minute.
      const rest = w.advanceTo(T + 60 * SECOND);
      const lives = [...first, ...rest].filter((e) => e.kind === 'life');
      for (let t = 0; t < 60; t += 10) {
        expect({
          from: t,
          any: lives.some((e) => e.at >= T + t * SECOND && e.at < T + (t + 10) * SECOND),
        }).toEqual({
          from: t,
          any: true,
        });
      }
      expect(lives.length).toBeGreaterThan(20);
    },
  );

  it('keeps the load of 500 people with more: 10,000 at pace 20 send about as much as 500 at pace 1', () => {
    const count = (users: number, pace: number): number =>
      new SimulatedWorld({ seed: 1, users, start: T, pace }).advanceTo(T + 120 * SECOND).length;
    const small = count(500, 1);
    const large = count(10_000, 20);
    expect(large).toBeLessThan(small * 2);
    expect(large).toBeGreaterThan(small / 2);
  });

  it('begins again later exactly as if made then (the demo starts the day after registering)', () => {
    const digest = (w: SimulatedWorld, from: number): string =>
      createHash('sha256')
        .update(JSON.stringify(w.advanceTo(from + 600 * SECOND)))
        .digest('hex');
    const later = T + 97 * SECOND;
    const moved = new SimulatedWorld({ seed: 5, users: 30, start: T });
    moved.restartAt(later);
    expect(digest(moved, later)).toBe(
      digest(new SimulatedWorld({ seed: 5, users: 30, start: later }), later),
    );
    expect(() => moved.restartAt(later + 1)).toThrow(/after the simulation has advanced/);
  });
});
