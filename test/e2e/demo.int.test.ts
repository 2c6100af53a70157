import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = join(resolve(__dirname, '../..'), 'bin/presence.js');

describe('presence demo, as a real process without a terminal', () => {
  it('shows all six platforms and changing states, then ends cleanly', async () => {
    const { stdout, stderr } = await run(
      process.execPath,
      [BIN, 'demo', '--duration', '5s', '--speed', '60', '--users', '8'],
      {
        timeout: 60_000,
      },
    );
    expect(stderr).toBe('');
    expect(stdout).not.toContain('\u001b['); // plain lines, no terminal codes
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^presence demo: 8 simulated people/);
    expect(lines[1]).toMatch(/^API http:\/\/127\.0\.0\.1:\d+ {2}key pk_/);
    expect(lines[2]).toMatch(
      /^change webhooks → orchestrator http:\/\/127\.0\.0\.1:\d+\/presence, every signature verified$/,
    );
    // A line per change, with version and explanation.
    const changes = lines.filter((l) => /^\d\d:\d\d:\d\d \S+\s+v\d+ /.test(l));
    expect(changes.length).toBeGreaterThan(8);
    expect(changes.some((l) => / v[2-9]\d* /.test(l))).toBe(true);
    // The final table has a column per platform and shows each platform's own words.
    const head = lines.find((l) => l.startsWith('USER'))!;
    for (const p of ['SLACK', 'TEAMS', 'DISCORD', 'ZOOM', 'WHATSAPP', 'LINKEDIN', 'DEVICE'])
      expect(head).toContain(p);
    expect(stdout).toMatch(/identity only/);
    expect(stdout).toMatch(/Available\/Available|Busy\/InAMeeting/);
    expect(stdout).toMatch(/\b(active|away)\b/);
    expect(lines.at(-1)).toMatch(
      /^demo ended: \d+ presence changes from \d+ platform reports; platforms seen: device, discord, slack, teams, whatsapp, zoom; webhooks verified \d+, rejected 0$/,
    );
  }, 90_000);

  it('refuses a bad option with a clear message', async () => {
    await expect(run(process.execPath, [BIN, 'demo', '--duration', 'soon'])).rejects.toMatchObject({
      stderr: expect.stringMatching(/--duration.*duration such as 60s/),
    });
  });
});
