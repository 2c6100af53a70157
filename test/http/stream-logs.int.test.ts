/**
 * A key sent as `?access_token=` (browsers cannot set headers on EventSource or WebSocket) never
 * reaches the logs, with every request logged (`PRESENCE_ACCESS_LOG=all`, debug level), for
 * accepted and refused connections alike.
 */

import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import pino from 'pino';

import { parseEnv } from '../../src/config/env';
import { FakeClock } from '../../src/core/clock';
import { LOG_REDACT } from '../../src/http/app';
import { createService } from '../../src/main';
import { tmpDir } from '../helpers/engine';
import { openSse, openWs } from '../helpers/stream-clients';
import { waitUntil } from '../helpers/wait';

it('the access token is absent from the logs', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const logger = pino({ level: 'debug', redact: { paths: LOG_REDACT, censor: '[redacted]' } }, sink);
  const tmp = tmpDir();
  const svc = await createService(
    parseEnv({
      PRESENCE_DB: join(tmp.dir, 'logs.db'),
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
      PRESENCE_ACCESS_LOG: 'all',
      LOG_LEVEL: 'debug',
    }),
    { clock: new FakeClock(), logger, timers: false },
  );
  try {
    const read = (await svc.keys.create(['read'], 'browser')).key;
    const writeOnly = (await svc.keys.create(['write'], 'writer')).key;
    await svc.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = svc.app.server.address() as AddressInfo;
    const q = (k: string) => `access_token=${encodeURIComponent(k)}`;

    const sse = await openSse(`http://127.0.0.1:${port}/v1/stream?user_ids=a&${q(read)}`);
    await sse.next((e) => e.event === 'snapshot');
    sse.close();
    const refused = await openSse(`http://127.0.0.1:${port}/v1/stream?user_ids=a&${q(writeOnly)}`);
    expect(refused.status).toBe(403);
    const bad = await openSse(`http://127.0.0.1:${port}/v1/stream?user_ids=bad%20id&${q(read)}`);
    expect(bad.status).toBe(400);
    const ws = await openWs(`ws://127.0.0.1:${port}/v1/ws?${q(read)}`);
    ws.send('not json');
    await ws.next((m) => m.type === 'error');
    await ws.close();
    await expect(openWs(`ws://127.0.0.1:${port}/v1/ws?${q(writeOnly)}`)).rejects.toMatchObject({
      status: 403,
    });

    // The refused SSE requests were logged (so the check below looks at real lines).
    await waitUntil(() => lines.filter((l) => l.includes('/v1/stream')).length >= 2, 'access-log lines');
    const all = lines.join('\n');
    for (const key of [read, writeOnly]) {
      expect(all).not.toContain(key);
      expect(all).not.toContain(encodeURIComponent(key));
      expect(all).not.toContain(key.slice(-16));
    }
  } finally {
    await svc.close();
    tmp.cleanup();
  }
});
