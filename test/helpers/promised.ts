import type { Async } from '../../src/core/ports';

/**
 * One synchronous store as its asynchronous port, each result a promise: for tests of a service
 * over a single SQLite store, where no transaction spans an await (the whole-database adapter with
 * transactions is store/async-sqlite.ts).
 */
export function promised<P extends object>(port: P): Async<P> {
  return new Proxy(port, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key);
      if (typeof value !== 'function') return value;
      const method = value as (...a: unknown[]) => unknown;
      return (...args: unknown[]) => Promise.resolve().then(() => method.apply(target, args));
    },
  }) as unknown as Async<P>;
}
