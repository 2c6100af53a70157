import { execFile, execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../..');
const BIN = join(ROOT, 'bin/presence.js');
const CHANGE = /^(\d\d):(\d\d):(\d\d) \S+\s+v\d+ /;

describe('presence demo, as a real process without a terminal', () => {
  it('prints plain lines: the API whole, changes that say what changed, a final table, a clean end', async () => {
    const { stdout, stderr } = await run(
      process.execPath,
      [BIN, 'demo', '--duration', '5s', '--speed', '60', '--users', '8'],
      { timeout: 90_000 },
    );
    expect(stderr).toBe('');
    expect(stdout).not.toContain('\u001b['); // plain lines, no terminal codes
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^presence demo: 8 simulated people/);
    expect(lines[1]).toMatch(/^API http:\/\/127\.0\.0\.1:\d+ {2}key pk_\S+$/);
    expect(lines[2]).toMatch(
      /^try: curl -H 'Authorization: Bearer pk_\S+' 'http:\/\/127\.0\.0\.1:\d+\/v1\/availability\?user_ids=alice,bob'$/,
    );
    expect(lines[3]).toMatch(
      /^change webhooks → orchestrator http:\/\/127\.0\.0\.1:\d+\/presence, every signature verified$/,
    );
    expect(lines[4]).toMatch(
      /^dashboard http:\/\/127\.0\.0\.1:\d+\/dashboard \(sign in with the key above\)$/,
    );
    // A line per change, with version, what changed and the explanation.
    const changes = lines.filter((l) => CHANGE.test(l));
    expect(changes.length).toBeGreaterThan(8);
    expect(changes.some((l) => / v[2-9]\d* /.test(l))).toBe(true);
    for (const l of changes) expect(l).not.toMatch(/([●◐⊘○·] \w+) → \1(?!\w)/);
    // The final table: availability next to the status, then each platform in its own words.
    const head = lines.find((l) => l.startsWith('USER'))!;
    expect(head).toMatch(/^USER\s+STATUS\s+AVAILABLE\s+REACHABLE VIA\s/);
    for (const p of ['SLACK', 'TEAMS', 'DISCORD', 'ZOOM', 'WHATSAPP', 'LINKEDIN', 'DEVICE'])
      expect(head).toContain(p);
    expect(stdout).toMatch(/^alice\s+\S \w+\s+[✓✗] /m);
    expect(stdout).toMatch(/identity only/);
    expect(stdout).toMatch(/Available\/Available|Busy\/InAMeeting/);
    expect(stdout).toMatch(/\b(active|away)\b/);
    expect(lines.at(-1)).toMatch(
      /^demo ended: \d+ presence changes from \d+ platform reports; platforms seen: device, discord, slack, teams, whatsapp, zoom; webhooks verified \d+, rejected 0$/,
    );
  }, 120_000);

  it('pages its reads past the API batch limit: --users 1001 runs and lists everyone', async () => {
    const { stdout, stderr } = await run(
      process.execPath,
      [BIN, 'demo', '--duration', '1s', '--speed', '10', '--users', '1001'],
      { timeout: 240_000, maxBuffer: 64 * 1024 * 1024 },
    );
    expect(stderr).toBe('');
    const rows = stdout.split('\n').filter((l) => /^[a-z]+\d*\s+\S \w+\s+[✓✗…]/.test(l));
    expect(rows).toHaveLength(1001);
    expect(stdout).toMatch(/^demo ended: /m);
  }, 300_000);

  it('refuses a bad option with a clear message', async () => {
    await expect(run(process.execPath, [BIN, 'demo', '--duration', 'soon'])).rejects.toMatchObject({
      stderr: expect.stringMatching(/--duration.*duration such as 60s/),
    });
  }, 60_000);
});

/**
 * The demo as a person sees it: in a 100×30 pseudo-terminal (tmux, on a socket of its own), at
 * the default speed. Waits are for conditions on screen, generous, never fixed sleeps.
 */
describe('presence demo in a 100×30 terminal', () => {
  const socket = `presence-demo-test-${process.pid}`;
  const tmux = (...args: string[]): string =>
    execFileSync('tmux', ['-L', socket, '-f', '/dev/null', ...args], { encoding: 'utf8' });
  const screen = (): string[] => tmux('capture-pane', '-p', '-t', 'demo').replace(/\n$/, '').split('\n');
  const waitFor = async (what: string, ok: (lines: string[]) => boolean, ms = 120_000): Promise<string[]> => {
    const until = Date.now() + ms;
    for (;;) {
      const lines = screen();
      if (ok(lines)) return lines;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}; screen:\n${lines.join('\n')}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  /** "0:18 left of 2:00 · 11:05:12 UTC ×1 · …": seconds run so far, and the simulated time now. */
  const clock = (lines: string[]): { elapsed: number; now: number } | null => {
    for (const l of lines) {
      const m = /^(\d+):(\d\d) left of (\d+):(\d\d) · (\d\d):(\d\d):(\d\d) UTC/.exec(l);
      if (m === null) continue;
      const n = m.slice(1).map(Number);
      return { elapsed: n[2]! * 60 + n[3]! - (n[0]! * 60 + n[1]!), now: n[4]! * 3600 + n[5]! * 60 + n[6]! };
    }
    return null;
  };

  afterAll(() => {
    try {
      tmux('kill-server');
    } catch {
      // already gone
    }
  });

  it('fits the screen without scrolling, shows the API whole, keeps changing after 20 s, redraws on resize, stops on Ctrl-C', async () => {
    tmux(
      'new-session',
      '-d',
      '-s',
      'demo',
      '-x',
      '100',
      '-y',
      '30',
      `cd '${ROOT}' && '${process.execPath}' bin/presence.js demo --duration 120s; sleep 600`,
    );
    const first = await waitFor('the table', (l) => l.some((x) => x.startsWith('USER')) && clock(l) !== null);
    const started = clock(first)!;
    const start = started.now - started.elapsed; // simulated time at the start (speed 1)

    // Something keeps happening: a change timestamped 20 s or more into the run shows on screen.
    const late = await waitFor('a change 20 s into the run', (l) => {
      const c = clock(l);
      if (c === null || c.elapsed < 20) return false;
      return l.some((x) => {
        const m = CHANGE.exec(x);
        return m !== null && Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) - start >= 20;
      });
    });
    expect(late).toHaveLength(30);
    // Nothing ever scrolled off the top: the pane has no history, and the top line is the header.
    expect(tmux('display-message', '-p', '-t', 'demo', '#{history_size}').trim()).toBe('0');
    expect(late[0]).toMatch(/^presence demo: 12 simulated people/);
    for (const l of late) expect([...l].length).toBeLessThanOrEqual(100);
    // The URL, key and curl example are whole (joined across the terminal's wrap).
    const joined = tmux('capture-pane', '-p', '-J', '-t', 'demo');
    expect(joined).toMatch(/^API http:\/\/127\.0\.0\.1:\d+ {2}key pk_\S+$/m);
    expect(joined).toMatch(
      /^try: curl -H 'Authorization: Bearer pk_\S+' 'http:\/\/127\.0\.0\.1:\d+\/v1\/availability\?user_ids=alice,bob'$/m,
    );
    // The columns that matter, every platform as a mark, availability next to the status.
    expect(late).toContainEqual(
      expect.stringMatching(/^USER\s+STATUS\s+AVAILABLE\s+REACH(ABLE)? VIA\s.*SL TM DC ZM WA LI DV/),
    );
    expect(late).toContainEqual(expect.stringMatching(/^alice\s+\S \w+\s+[✓✗] \S/));
    expect(late).toContainEqual(expect.stringMatching(/^\d+:\d\d left of 2:00 · /));
    expect(late).toContain('recent changes:');

    // A smaller terminal: the next screen is drawn for it, top line first, nothing cut off below.
    tmux('resize-window', '-t', 'demo', '-x', '80', '-y', '20');
    const small = await waitFor(
      'a redraw at 80×20',
      (l) =>
        l.length === 20 &&
        l[0]!.startsWith('presence demo:') &&
        l.some((x) => x.startsWith('USER')) &&
        l.includes('recent changes:'),
    );
    for (const l of small) expect([...l].length).toBeLessThanOrEqual(80);
    expect(small).toContainEqual(expect.stringMatching(/^\+\d+ more$/));

    // Ctrl-C ends it cleanly, with the summary line.
    tmux('send-keys', '-t', 'demo', 'C-c');
    const end = await waitFor('the end', (l) => l.some((x) => x.startsWith('demo ended:')), 90_000);
    expect(end.join('\n')).toMatch(/webhooks verified \d+, rejected 0/);
  }, 300_000);
});
