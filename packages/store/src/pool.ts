import type { Socket } from "node:net";
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
  /**
   * A statement whose connection receives nothing for this long is taken for
   * dead: the connection is closed and the statement fails with a transient
   * error (ETIMEDOUT), so callers retry on a fresh connection. Bounds a network
   * partition, where packets vanish and TCP retransmits for up to 15 minutes
   * (docs/OPERATIONS.md, "Network partitions"). Keep it above the longest
   * statement; 0 = none.
   */
  socketTimeoutMillis?: number;
  /** Called for errors on idle connections (a killed backend, a restart). */
  onIdleError?: (error: Error) => void;
}

/**
 * TCP keepalive on every connection, probing after this much silence (the
 * kernel's default is two hours): an idle connection (LISTEN) whose peer
 * vanished, e.g. a server address moved elsewhere, is found dead and replaced.
 */
const KEEPALIVE_IDLE_MILLIS = 10_000;

/** The session state a pool's statements need, and how each mode gets it to them. */
interface SessionSettings {
  poolMode: PoolMode;
  statementTimeoutMillis: number;
  socketTimeoutMillis: number;
}

/**
 * The one home of the session's timeouts: set once per connection in session
 * mode, for each transaction (set_config's `is_local`) in transaction mode (a
 * SET would stay on a server connection other clients share, and PgBouncer
 * refuses it as a startup parameter). One statement, so it also runs where
 * the extended protocol allows no more than one.
 *
 * With a socket timeout, the server ends a session left idle inside a
 * transaction for as long (idle_in_transaction_session_timeout): a client
 * cut off mid-transaction would otherwise hold its row locks until the
 * server's TCP gives up, 15 minutes later, and the rescuer, which skips
 * locked rows, could not take its jobs back (docs/OPERATIONS.md, "Network partitions").
 */
function setUpFor(settings: SessionSettings, mode: PoolMode): string | null {
  if (settings.poolMode !== mode) return null;
  const local = mode === "transaction";
  const settingsSql: string[] = [];
  if (settings.statementTimeoutMillis > 0) settingsSql.push(`set_config('statement_timeout', '${Math.trunc(settings.statementTimeoutMillis)}', ${local})`);
  if (settings.socketTimeoutMillis > 0) {
    settingsSql.push(`set_config('idle_in_transaction_session_timeout', '${Math.trunc(settings.socketTimeoutMillis)}', ${local})`);
  }
  return settingsSql.length === 0 ? null : `select ${settingsSql.join(", ")}`;
}

const NO_SETTINGS: SessionSettings = { poolMode: "session", statementTimeoutMillis: 0, socketTimeoutMillis: 0 };

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
    this.closeWhenSilent();
    const setUp = setUpFor(this.settings, "session");
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

  /**
   * Node's socket timeout fires after that long without traffic either way; it
   * matters only while a statement waits for its answer (pg's `_activeQuery`),
   * not on an idle or LISTENing connection. Destroying the socket fails the
   * statement, and pg marks the client unusable, so the pool drops it.
   */
  private closeWhenSilent(): void {
    const ms = this.settings.socketTimeoutMillis;
    if (ms <= 0) return;
    const client = this as unknown as { connection: { stream: Socket }; _activeQuery: unknown };
    const socket = client.connection.stream;
    socket.setTimeout(ms);
    socket.on("timeout", () => {
      if (!client._activeQuery) return;
      const error = Object.assign(
        new Error(`no answer from PostgreSQL at ${databaseAddress(this.host, this.port)} within ${ms} ms; the connection is closed as dead`),
        { code: "ETIMEDOUT" },
      );
      socket.destroy(error);
    });
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
    // Only the statement timeout needs the wrapping: a lone statement is never idle inside a transaction.
    const setUp = setUpFor({ ...this.settings, socketTimeoutMillis: 0 }, "transaction");
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
  const settings: SessionSettings = {
    poolMode: options.poolMode ?? "session",
    statementTimeoutMillis: options.statementTimeoutMillis ?? 0,
    socketTimeoutMillis: options.socketTimeoutMillis ?? 0,
  };
  const pool = new IxPool(
    {
      Client: AddressedClient,
      connectionString: url,
      max: options.max ?? 10,
      connectionTimeoutMillis: options.connectionTimeoutMillis ?? 10_000,
      // The one startup parameter PgBouncer passes on (docs/ARCHITECTURE.md, "Behind a pooler").
      application_name: options.applicationName ?? "ix",
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MILLIS,
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

/** What a transaction on `pool` runs first, in transaction mode: its transaction-local timeouts (setUpFor). */
export function transactionSetUp(pool: pg.Pool): string | null {
  return setUpFor(pool instanceof IxPool ? pool.settings : NO_SETTINGS, "transaction");
}
