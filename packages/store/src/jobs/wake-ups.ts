import { sql } from "drizzle-orm";
import type pg from "pg";
import type { Database, Executor } from "../db.ts";

/** LISTEN on this channel to be woken when a job becomes pending. */
export const PENDING_CHANNEL = "ix_jobs_pending";

/**
 * Wakes idle workers after jobs became pending, outside the transaction that
 * made them so (docs/ARCHITECTURE.md, "Wake-ups"). A transaction that NOTIFYs
 * holds PostgreSQL's database-wide notify lock until its commit record is
 * flushed, so notifying inserts could not share a WAL flush; a statement that
 * only notifies has no transaction id, so its commit waits for no flush.
 *
 * At most one wake-up is in flight, on a connection of the pool; wake-ups
 * requested meanwhile are owed as exactly one more, sent when it ends. Each
 * is sent after the rows it announces have committed, so a woken worker finds
 * them; one lost (the statement failed, or the process died first) costs at
 * most the workers' poll interval.
 */
export class PendingWakeups {
  readonly #db: Database;
  readonly #onError = new Set<(error: unknown) => void>();
  #inFlight: Promise<void> | undefined;
  #owed = false;

  constructor(db: Database) {
    this.#db = db;
  }

  /** Requests a wake-up; never waits and never throws (a failure goes to the `onError` listeners). */
  wake(): void {
    if (this.#inFlight !== undefined) {
      this.#owed = true;
      return;
    }
    this.#send();
  }

  /** Calls `listener` with each wake-up that failed; returns its removal. */
  onError(listener: (error: unknown) => void): () => void {
    this.#onError.add(listener);
    return () => this.#onError.delete(listener);
  }

  /** Resolves once no wake-up is in flight or owed (before closing the pool). */
  async settled(): Promise<void> {
    while (this.#inFlight !== undefined) await this.#inFlight;
  }

  #send(): void {
    this.#owed = false;
    this.#inFlight = this.#db
      .execute(sql`select pg_notify(${PENDING_CHANNEL}, '')`)
      .then(
        () => undefined,
        (error: unknown) => {
          for (const listener of this.#onError) listener(error);
        },
      )
      .finally(() => {
        this.#inFlight = undefined;
        if (this.#owed) this.#send();
      });
  }
}

/** One PendingWakeups per pool, so every write of a process shares its coalescing. */
const byPool = new WeakMap<pg.Pool, PendingWakeups>();

/** The process's wake-ups over this database's pool. */
export function pendingWakeups(db: Database): PendingWakeups {
  let wakeups = byPool.get(db.$client);
  if (!wakeups) {
    wakeups = new PendingWakeups(db);
    byPool.set(db.$client, wakeups);
  }
  return wakeups;
}

/**
 * Called by every write that makes jobs pending, once its statements are done.
 * On the database itself each statement has committed, so workers are woken
 * now; in a caller's transaction nothing is committed yet, so the caller
 * requests the wake-up (`pendingWakeups(db).wake()`) after its commit.
 */
export function wakeIfCommitted(db: Executor): void {
  // Drizzle sets $client on a database, never on a transaction.
  if ("$client" in db) pendingWakeups(db).wake();
}
