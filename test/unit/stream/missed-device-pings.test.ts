/**
 * The "missed device pings" figure: a keepalive ping a device connection had not answered when
 * the next one was due. Connections that are not devices, and devices that answer, add nothing.
 */

import { FakeClock } from '../../../src/core/clock';
import { StreamHub } from '../../../src/stream/hub';
import { FakeTransport, fakeReader, ManualTimers } from '../../helpers/stream-fakes';

describe('missed device pings', () => {
  it('counts each unanswered ping of a device connection, up to the one that finds it dead', () => {
    const clock = new FakeClock();
    const timers = new ManualTimers(clock);
    const hub = new StreamHub({
      clock,
      timers,
      reader: fakeReader(new Map()),
      epoch: 'ep',
      defer: (run) => run(),
    });
    hub.start();
    const silentDevice = hub.open(new FakeTransport('ws'));
    silentDevice.holdsDevice = true;
    const answeringDevice = hub.open(new FakeTransport('ws'));
    answeringDevice.holdsDevice = true;
    const silentWatcher = hub.open(new FakeTransport('ws'));
    timers.advance(25_000); // first pings: nothing missed yet
    expect(hub.stats.missedDevicePings).toBe(0);
    answeringDevice.unansweredPings = 0;
    timers.advance(25_000); // the silent device missed one
    expect(hub.stats.missedDevicePings).toBe(1);
    answeringDevice.unansweredPings = 0;
    timers.advance(25_000); // and a second: it is closed as dead
    expect(hub.stats.missedDevicePings).toBe(2);
    expect(silentDevice.closed).toBe(true);
    expect(silentWatcher.closed).toBe(true);
    answeringDevice.unansweredPings = 0;
    timers.advance(25_000);
    expect(hub.stats.missedDevicePings).toBe(2);
    expect(answeringDevice.closed).toBe(false);
  });
});
