import WebSocket from 'ws';

import { Outgoing, textFrame } from '../../../src/stream/message';

// The frames are read back by the `ws` package's own receiver, as a client would read them.
type Receiver = NodeJS.WritableStream & {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
};
const { Receiver } = WebSocket as unknown as { Receiver: new (options: { isServer: boolean }) => Receiver };

function readBack(frames: readonly Buffer[]): Promise<{ text: string; isBinary: boolean }[]> {
  const receiver = new Receiver({ isServer: false });
  const got: { text: string; isBinary: boolean }[] = [];
  receiver.on('message', (data, isBinary) => got.push({ text: data.toString('utf8'), isBinary }));
  return new Promise((resolve, reject) => {
    receiver.on('error', reject);
    receiver.write(Buffer.concat(frames), () => resolve(got));
  });
}

describe('stream messages as WebSocket frames', () => {
  it('frames texts of every length class (7-, 16- and 64-bit lengths) so a WebSocket client reads them back', async () => {
    const texts = [0, 1, 125, 126, 65_535, 65_536, 200_000].map((n) => 'x'.repeat(n));
    texts.push('{"custom_status":"café ☕"}'); // more bytes than characters
    const got = await readBack(texts.map(textFrame));
    expect(got.map((g) => g.text)).toEqual(texts);
    expect(got.every((g) => !g.isBinary)).toBe(true);
  });

  it('makes a message’s frame once and keeps its text readable after', () => {
    const m = new Outgoing('presence', '{"type":"presence","user_id":"a"}', 'a', 'e:1');
    const frame = m.frame;
    expect(m.frame).toBe(frame);
    expect(m.json).toBe('{"type":"presence","user_id":"a"}');
    expect(m.bytes).toBe(m.json.length);
    expect(m.sse).toBe(`event: presence\nid: e:1\ndata: ${m.json}\n\n`);
  });
});
