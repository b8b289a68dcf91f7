import { isTransientDbError, unreachableDatabase } from "@ix/store";
import type { Logger } from "pino";
import { pause } from "./pause.ts";

/** The first wait after a failure; it doubles per failure in a row, up to the max. */
export const FIRST_DB_RETRY_MS = 100;
export const MAX_DB_RETRY_MS = 5_000;

export interface DbRetryOptions {
  /** Ends the retrying: a wait in progress is cut short and the last error is thrown. */
  signal: AbortSignal;
  /** Told of every failure that will be retried, and how long until the next try. */
  onFailure(error: unknown, retryInMs: number): void;
  /** Whether a failure is worth retrying (default: every failure); one that is not is thrown at once. */
  retryable?(error: unknown): boolean;
}

/**
 * Runs `attempt` until it succeeds, waiting 100 ms after a failure, doubling
 * to 5 s, so a database that is away (restart, failover, killed connections)
 * is neither hammered nor given up on. An attempt that ran longer than the
 * longest wait before failing was a healthy stretch (a LISTEN session, say),
 * so the wait starts over. Rejects with the last error once `signal` aborts.
 */
export async function retryWhileDbAway<T>(
  attempt: () => Promise<T>,
  { signal, onFailure, retryable = () => true }: DbRetryOptions,
): Promise<T> {
  let delay = FIRST_DB_RETRY_MS;
  for (;;) {
    const since = Date.now();
    try {
      return await attempt();
    } catch (error) {
      if (signal.aborted || !retryable(error)) throw error;
      if (Date.now() - since > MAX_DB_RETRY_MS) delay = FIRST_DB_RETRY_MS;
      onFailure(error, delay);
      await pause(delay, signal);
      if (signal.aborted) throw error;
      delay = Math.min(delay * 2, MAX_DB_RETRY_MS);
    }
  }
}

/**
 * Logs a failed database step: a warning while the database is away (it will be retried), an error otherwise.
 * A server that cannot be reached is named (host:port) rather than the statement that needed it.
 */
export function logDbError(log: Logger, error: unknown, what: string, retryInMs?: number): void {
  const why = unreachableDatabase(error)?.message;
  if (isTransientDbError(error)) log.warn({ err: error, retryInMs }, `${what}: ${why ?? "database unavailable"}`);
  else log.error({ err: error, retryInMs }, `${what} failed${why ? `: ${why}` : ""}`);
}
