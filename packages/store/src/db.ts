import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import type { PgTransactionConfig } from "drizzle-orm/pg-core";
import pg from "pg";
import { DatabaseUnreachableError, databaseAddress } from "./errors.ts";
import * as schema from "./schema.ts";

export type Database = NodePgDatabase<typeof schema> & { $client: pg.Pool };
export type Transaction = Parameters<Parameters<Database["transaction"]>[0]>[0];
/** What every repo function takes first: the database, or a transaction the caller owns. */
export type Executor = Database | Transaction;

export interface PoolOptions {
  /** Connections kept by this process. */
  max?: number;
  /** How long a checkout may wait for a connection before failing (ms). */
  connectionTimeoutMillis?: number;
  /** Server-side cap on any one statement (ms); 0 = none. */
  statementTimeoutMillis?: number;
  /** Shown in pg_stat_activity, so operators can tell api from worker connections. */
  applicationName?: string;
  /** Called for errors on idle connections (a killed backend, a restart). */
  onIdleError?: (error: Error) => void;
}

/**
 * The pool's client: a failure to connect becomes a DatabaseUnreachableError
 * naming the server, so whatever needed the connection (a query, a LISTEN)
 * reports an unreachable database, not a failed statement.
 */
class AddressedClient extends pg.Client {
  constructor(config?: pg.ClientConfig) {
    super(config);
    // A backend that dies while this client is checked out makes pg emit 'error' here, and the pool
    // listens only while the client is idle: unhandled, that would crash the process. The statement
    // in flight (or the next one) fails with the error, and release drops the dead client.
    this.on("error", () => {});
  }

  override connect(): Promise<pg.Client>;
  override connect(callback: ((err: Error) => void) | ((err: null, client: pg.Client) => void)): void;
  // biome-ignore lint/suspicious/noExplicitAny: pg's callback is typed as a union of two signatures; it is called as either.
  override connect(callback?: (err: any, client: any) => void): Promise<pg.Client> | undefined {
    const unreachable = (error: unknown) => new DatabaseUnreachableError(databaseAddress(this.host, this.port), error);
    if (!callback) {
      return super.connect().catch((error: unknown) => {
        throw unreachable(error);
      });
    }
    super.connect((error: Error | null, client?: pg.Client) => (error ? callback(unreachable(error), undefined) : callback(null, client)));
    return undefined;
  }
}

export function createPool(url: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    Client: AddressedClient,
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 10_000,
    application_name: options.applicationName ?? "ix",
    ...(options.statementTimeoutMillis ? { statement_timeout: options.statementTimeoutMillis } : {}),
  });
  // An idle client whose backend dies emits 'error' on the pool; unhandled it
  // would crash the process. pg has already dropped that client, so the next
  // checkout opens a fresh connection: report it and carry on.
  pool.on("error", (error) => options.onIdleError?.(error));
  return pool;
}

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
  let failed: { error: unknown } | undefined;
  let destroy: Error | undefined;
  try {
    return await session.transaction(async (tx) => {
      try {
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
