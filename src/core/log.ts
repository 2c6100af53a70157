/**
 * @module core/log
 * The logging port: the subset of pino's API the code uses, so that tests and library users can
 * pass their own logger (or none).
 */

export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const nothing = (): void => undefined;
export const silentLog: Log = { debug: nothing, info: nothing, warn: nothing, error: nothing };
