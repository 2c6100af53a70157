import { createServer } from 'node:net';

/**
 * A loopback port that was free a moment ago: for a child process that must be told its port in
 * advance (the OAuth callback listener of `presence connect`). Asking the kernel for one is far
 * safer on a shared machine than a random number, which another process may hold.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
