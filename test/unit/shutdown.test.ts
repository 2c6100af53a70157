import { cleanShutdown, runShutdown } from '../../src/core/shutdown';
import type { Log } from '../../src/core/log';

function recordingLog() {
  const lines: string[] = [];
  const at = (msg?: string) => lines.push(msg ?? '');
  const log: Log = {
    debug: (_o, m) => at(m),
    info: (_o, m) => at(m),
    warn: (_o, m) => at(m),
    error: (_o, m) => at(m),
  };
  return { log, lines };
}

describe('runShutdown', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('runs every step in order when all finish', async () => {
    const order: string[] = [];
    const { log } = recordingLog();
    const report = await runShutdown(
      ['http', 'engine', 'store'].map((name) => ({ name, run: () => void order.push(name) })),
      { stepTimeoutMs: 1000, totalTimeoutMs: 5000, log },
    );
    expect(order).toEqual(['http', 'engine', 'store']);
    expect(report).toEqual({ completed: ['http', 'engine', 'store'], timedOut: [], failed: [], skipped: [] });
    expect(cleanShutdown(report)).toBe(true);
  });

  it('gives up on a step that never finishes, names it, and goes on', async () => {
    const { log, lines } = recordingLog();
    const ran: string[] = [];
    const done = runShutdown(
      [
        { name: 'store-flush', run: () => new Promise(() => undefined) },
        { name: 'store', run: () => void ran.push('store') },
      ],
      { stepTimeoutMs: 2000, totalTimeoutMs: 8000, log },
    );
    await jest.advanceTimersByTimeAsync(2000);
    const report = await done;
    expect(report.timedOut).toEqual(['store-flush']);
    expect(report.completed).toEqual(['store']);
    expect(ran).toEqual(['store']);
    expect(lines).toContain('shutdown: store-flush did not finish in time; going on without it');
    expect(cleanShutdown(report)).toBe(false);
  });

  it('a failing step is reported and the next still runs', async () => {
    const { log, lines } = recordingLog();
    const report = await runShutdown(
      [
        {
          name: 'engine',
          run: () => {
            throw new Error('database is locked');
          },
        },
        { name: 'store', run: () => undefined },
      ],
      { stepTimeoutMs: 1000, totalTimeoutMs: 5000, log },
    );
    expect(report.failed).toEqual([{ name: 'engine', error: 'database is locked' }]);
    expect(report.completed).toEqual(['store']);
    expect(lines).toContain('shutdown: engine failed; going on');
  });

  it('stops at the overall deadline: later steps are skipped, except those that always run', async () => {
    const { log } = recordingLog();
    const never = () => new Promise<void>(() => undefined);
    const closed: string[] = [];
    const done = runShutdown(
      [
        { name: 'a', run: never },
        { name: 'b', run: never },
        { name: 'c', run: never },
        { name: 'store', run: () => void closed.push('store'), always: true },
      ],
      { stepTimeoutMs: 3000, totalTimeoutMs: 5000, log },
    );
    // a times out at 3 s, b is cut by the deadline at 5 s; c is never started.
    await jest.advanceTimersByTimeAsync(5000);
    const report = await done;
    expect(report.timedOut).toEqual(['a', 'b']);
    expect(report.skipped).toEqual(['c']);
    expect(report.completed).toEqual(['store']);
    expect(closed).toEqual(['store']);
  });
});
