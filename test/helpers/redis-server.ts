/**
 * @module test/helpers/redis-server
 * A `redis-server` child of the test on a free loopback port, with nothing persisted (`--save ""
 * --appendonly no`): `kill()` ends it at once (SIGKILL, as a crash), `start()` brings it back on
 * the same port EMPTY, as a Redis restarted without persistence. For tests of what the nodes do
 * when Redis loses everything; the shared Redis at 6379 is never touched.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';

import { freePort } from './free-port';
import { sleep } from './wait';

export class RedisServer {
  private child: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServer> {
    const server = new RedisServer(await freePort());
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (empty) and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.child !== null) return;
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = null;
    });
    for (let i = 0; ; i++) {
      if (await this.answers()) return;
      if (this.child === null || i > 500) throw new Error(`redis-server did not start on ${this.port}`);
      await sleep(20);
    }
  }

  /** Whether it answers PING now (a plain socket: nothing of it stays behind after). */
  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = connect(this.port, '127.0.0.1');
      const done = (ok: boolean): void => {
        socket.destroy();
        resolve(ok);
      };
      socket.once('error', () => done(false));
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
    });
  }

  /** SIGKILL, and waits until the process is gone (its port free again). */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
    this.child = null;
  }
}
