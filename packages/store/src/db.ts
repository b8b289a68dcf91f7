import { sql } from "drizzle-orm";
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import type { PgTransactionConfig } from "drizzle-orm/pg-core";
import type pg from "pg";
import { createPool, type PoolOptions, transactionSetUp } from "./pool.ts";
import * as schema from "./schema.ts";

export type Database = NodePgDatabase<typeof schema> & { $client: pg.Pool };
export type Transaction = Parameters<Parameters<Database["transaction"]>[0]>[0];
/** What every repo function takes first: the database, or a transaction the caller owns. */
export type Executor = Database | Transaction;

export function createDatabase(pool: pg.Pool): Database {
  const db = drizzle({ client: pool, schema }) as Database;
  db.transaction = (run, config) => transactionOn(pool, run, config);
  return db;
}

/** Drizzle over one checked-out client, kept per client: the pool reuses its clients, so this is built once per connection. */
const sessions = new WeakMap<pg.PoolClient, NodePgDatabase<typeof schema>>();

/**
 * Drizzle's transaction on a client we check out and always give back.
 * Drizzle (0.45) sends `begin` before the try/finally that releases its client,
 * so a begin that failed on a dead connection leaked the client, and
 * `pool.end()` then waited for it forever. A begin, commit or rollback that
 * fails leaves the connection in an unknown state, so it is destroyed; a
 * rollback failing after the transaction's own error does not hide that error.
 */
async function transactionOn<T>(pool: pg.Pool, run: (tx: Transaction) => Promise<T>, config?: PgTransactionConfig): Promise<T> {
  const client = await pool.connect();
  let session = sessions.get(client);
  if (!session) {
    // Over a single client (not a pool) Drizzle neither checks out nor releases.
    session = drizzle({ client, schema });
    sessions.set(client, session);
  }
  const setUp = transactionSetUp(pool);
  let failed: { error: unknown } | undefined;
  let destroy: Error | undefined;
  try {
    return await session.transaction(async (tx) => {
      try {
        if (setUp) await tx.execute(sql.raw(setUp));
        return await run(tx);
      } catch (error) {
        failed = { error };
        throw error;
      }
    }, config);
  } catch (error) {
    if (error !== failed?.error) destroy = error instanceof Error ? error : new Error(String(error));
    throw failed ? failed.error : error;
  } finally {
    client.release(destroy);
  }
}

/** Opens a pool and a Drizzle database over it; `close()` ends the pool. */
export function connect(url: string, options: PoolOptions = {}): Database & { close(): Promise<void> } {
  const pool = createPool(url, options);
  const db = createDatabase(pool);
  return Object.assign(db, { close: () => pool.end() });
}
