import { runDemo } from '../../demo/cli';

describe('presence demo', () => {
  it('runs non-interactively: all six platforms, changing states, a clean end', async () => {
    let out = '';
    const summary = await runDemo({
      users: 12,
      durationMs: 3000,
      speed: 120,
      seed: 1,
      tty: false,
      frameMs: 100,
      write: (t) => {
        out += t;
      },
    });
    expect(summary.platforms).toEqual(['device', 'discord', 'slack', 'teams', 'whatsapp', 'zoom']);
    expect(summary.changes).toBeGreaterThan(12);
    expect(out).not.toContain('\u001b[');
    for (const p of ['SLACK', 'TEAMS', 'DISCORD', 'ZOOM', 'WHATSAPP', 'LINKEDIN']) expect(out).toContain(p);
    expect(out).toContain('identity only');
    expect(out).toMatch(/ v2 /);
    expect(out).toMatch(/demo ended: \d+ presence changes/);
  }, 30_000);
});
