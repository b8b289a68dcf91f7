import pg from "pg";
import { DatabaseUnreachableError, databaseAddress } from "./errors.ts";

/**
 * How the server side pools connections (docs/ARCHITECTURE.md, "Behind a
 * pooler"). `session`: each connection is one PostgreSQL session, as when
 * connecting directly. `transaction`: a pooler such as PgBouncer hands each
 * transaction whichever server connection is free, so nothing may rely on
 * session state: no startup parameters, no SET, no named prepared statements.
 */
export const POOL_MODES = ["session", "transaction"] as const;
export type PoolMode = (typeof POOL_MODES)[number];

export interface PoolOptions {
  /** Connections kept by this process. */
  max?: number;
  /** How long a checkout may wait for a connection before failing (ms). */
  connectionTimeoutMillis?: number;
  /** Server-side cap on any one statement (ms); 0 = none. */
  statementTimeoutMillis?: number;
  /** Shown in pg_stat_activity, so operators can tell api from worker connections. */
  applicationName?: string;
  /** What the URL reaches: PostgreSQL or a session pooler (the default), or a transaction pooler. */
  poolMode?: PoolMode;
  /** Called for errors on idle connections (a killed backend, a restart). */
  onIdleError?: (error: Error) => void;
}

/** The session state a pool's statements need, and how each mode gets it to them. */
interface SessionSettings {
  poolMode: PoolMode;
  statementTimeoutMillis: number;
}

/**
 * The one home of the statement timeout: set once per connection in session
 * mode, with SET LOCAL in every transaction in transaction mode (a SET would
 * stay on a server connection other clients share, and PgBouncer refuses it
 * as a startup parameter).
 */
function timeoutFor(settings: SessionSettings, mode: PoolMode): string | null {
  if (settings.poolMode !== mode || settings.statementTimeoutMillis <= 0) return null;
  return `${mode === "session" ? "set" : "set local"} statement_timeout = ${Math.trunc(settings.statementTimeoutMillis)}`;
}

const NO_SETTINGS: SessionSettings = { poolMode: "session", statementTimeoutMillis: 0 };

/** A statement's config as Drizzle passes it: a plain object, unlike pg's Query and cursors, which pass through untouched. */
function isPlainConfig(value: unknown): value is pg.QueryConfig {
  return typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/**
 * The pool's client: a failure to connect becomes a DatabaseUnreachableError
 * naming the server, so whatever needed the connection (a query, a LISTEN)
 * reports an unreachable database, not a failed statement. It is ready for
 * its first statement only once its session is set up.
 */
class AddressedClient extends pg.Client {
  private readonly settings: SessionSettings;

  constructor(config?: pg.ClientConfig & { ixSession?: SessionSettings }) {
    super(config);
    this.settings = config?.ixSession ?? NO_SETTINGS;
    // A backend that dies while this client is checked out makes pg emit 'error' here, and the pool
    // listens only while the client is idle: unhandled, that would crash the process. The statement
    // in flight (or the next one) fails with the error, and release drops the dead client.
    this.on("error", () => {});
  }

  override connect(): Promise<pg.Client>;
  override connect(callback: ((err: Error) => void) | ((err: null, client: pg.Client) => void)): void;
  // biome-ignore lint/suspicious/noExplicitAny: pg's callback is typed as a union of two signatures; it is called as either.
  override connect(callback?: (err: any, client: any) => void): Promise<pg.Client> | undefined {
    const connected = this.connectAndSetUp();
    if (!callback) return connected;
    connected.then((client) => callback(null, client), (error: unknown) => callback(error, undefined));
    return undefined;
  }

  private async connectAndSetUp(): Promise<pg.Client> {
    try {
      await super.connect();
    } catch (error) {
      throw new DatabaseUnreachableError(databaseAddress(this.host, this.port), error);
    }
    const setUp = timeoutFor(this.settings, "session");
    if (setUp) {
      // Before the pool hands the client out, so its first statement already runs under the timeout.
      try {
        await super.query(setUp);
      } catch (error) {
        await this.end().catch(() => {});
        throw error;
      }
    }
    return this;
  }

  // biome-ignore lint/suspicious/noExplicitAny: pg.Client.query has a dozen overloads; this only rewrites a plain config's name.
  override query(config: any, ...rest: any[]): any {
    // A named statement is prepared once per server connection, which a transaction pooler does not keep
    // per client (PgBouncer before 1.21 does not track them at all): send it unnamed instead.
    if (this.settings.poolMode === "transaction" && isPlainConfig(config) && config.name !== undefined) {
      const { name: _name, ...unnamed } = config;
      return super.query(unnamed, ...rest);
    }
    return super.query(config, ...rest);
  }
}

/**
 * The pool. In transaction mode with a statement timeout, a statement run on
 * the pool (outside a transaction) runs in one of its own, so that SET LOCAL
 * can bound it: `begin; set local …`, the statement, `commit`.
 */
class IxPool extends pg.Pool {
  constructor(
    config: pg.PoolConfig & { ixSession: SessionSettings },
    readonly settings: SessionSettings,
  ) {
    super(config);
  }

  // biome-ignore lint/suspicious/noExplicitAny: pg.Pool.query has a dozen overloads; this wraps the promise form only.
  override query(config: any, ...rest: any[]): any {
    const setUp = timeoutFor(this.settings, "transaction");
    if (!setUp || typeof rest.at(-1) === "function" || typeof config?.submit === "function") return super.query(config, ...rest);
    return this.inTransaction(setUp, config, rest[0]);
  }

  private async inTransaction(setUp: string, config: unknown, values: unknown): Promise<pg.QueryResult> {
    const client = await this.connect();
    // Destroyed rather than reused when begin or rollback fails: its state is unknown.
    let destroy: Error | undefined;
    try {
      await client.query(`begin; ${setUp}`).catch((error: Error) => {
        destroy = error;
        throw error;
      });
      try {
        const result = await client.query(config as pg.QueryConfig, values as unknown[]);
        await client.query("commit");
        return result;
      } catch (error) {
        await client.query("rollback").catch((rollbackError: Error) => {
          destroy = rollbackError;
        });
        throw error;
      }
    } finally {
      client.release(destroy);
    }
  }
}

export function createPool(url: string, options: PoolOptions = {}): pg.Pool {
  const settings: SessionSettings = { poolMode: options.poolMode ?? "session", statementTimeoutMillis: options.statementTimeoutMillis ?? 0 };
  const pool = new IxPool(
    {
      Client: AddressedClient,
      connectionString: url,
      max: options.max ?? 10,
      connectionTimeoutMillis: options.connectionTimeoutMillis ?? 10_000,
      // The one startup parameter PgBouncer passes on (docs/ARCHITECTURE.md, "Behind a pooler").
      application_name: options.applicationName ?? "ix",
      // pg-pool gives its options to every client it creates.
      ixSession: settings,
    },
    settings,
  );
  // An idle client whose backend dies emits 'error' on the pool; unhandled it
  // would crash the process. pg has already dropped that client, so the next
  // checkout opens a fresh connection: report it and carry on.
  pool.on("error", (error) => options.onIdleError?.(error));
  return pool;
}

/** What a transaction on `pool` runs first: SET LOCAL of the statement timeout, in transaction mode. */
export function transactionSetUp(pool: pg.Pool): string | null {
  return timeoutFor(pool instanceof IxPool ? pool.settings : NO_SETTINGS, "transaction");
}
