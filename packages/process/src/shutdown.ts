// A package, not part of one app: ix api, ix worker and ix start all use it, and the API and the worker may not import each other.

/** Where the signals come from: the process, or an EventEmitter in tests. */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

/** The part of a pino logger the shutdown reports through. */
export interface ShutdownLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface ShutdownOnSignals {
  /** Settles as the shutdown the first signal began does (never, without a signal). */
  readonly done: Promise<void>;
  /** Removes the handlers: once shut down, or when the process ends for another reason. Idempotent. */
  dispose(): void;
}

/** SIGHUP too: a closed terminal must stop ix as cleanly as Ctrl-C does, not kill it and orphan what it started. */
const SIGNALS: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP"];

/**
 * The one shutdown rule of every ix process (`ix api`, `ix worker`, `ix start`):
 * the first SIGTERM, SIGINT or SIGHUP calls `stop`, which finishes in-flight work; a
 * second aborts the `force` signal `stop` was given, telling it to stop
 * waiting. The handlers are then removed, so a third signal gets Node's
 * default and ends the process at once.
 */
export function shutdownOnSignals(
  stop: (signal: NodeJS.Signals, force: AbortSignal) => Promise<void>,
  { log, source = process }: { log: ShutdownLog; source?: SignalSource },
): ShutdownOnSignals {
  const force = new AbortController();
  let received = 0;
  let resolveDone: () => void = () => {};
  let rejectDone: (error: unknown) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });

  const dispose = () => {
    for (const signal of SIGNALS) source.off(signal, onSignal);
  };

  function onSignal(signal: NodeJS.Signals): void {
    received++;
    if (received === 1) {
      log.info({ signal }, "shutdown requested");
      stop(signal, force.signal).then(resolveDone, rejectDone);
    } else {
      log.warn({ signal }, "second signal: no longer waiting for in-flight work");
      dispose();
      force.abort();
    }
  }

  for (const signal of SIGNALS) source.on(signal, onSignal);
  return { done, dispose };
}
