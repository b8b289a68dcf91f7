/**
 * SQLSTATE classes and codes after which retrying on a fresh connection can
 * succeed: the connection or server went away, or the server is starting up
 * or shutting down. Everything else is a bug or bad input and must surface.
 */
const TRANSIENT_SQLSTATES = new Set([
  "57P01", // admin_shutdown (pg_terminate_backend, fast shutdown)
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up / recovery)
  "53300", // too_many_connections
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "57014", // query_canceled (statement_timeout)
]);

// EHOSTUNREACH and friends: a connect across a partition (on one network segment the kernel gets no ARP
// answer and says so after about 3 s); the path may come back at any moment (docs/OPERATIONS.md, "Network partitions").
const TRANSIENT_NODE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENETDOWN",
]);

function codeOf(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return error.code;
  }
  return undefined;
}

/** The SQLSTATE of a pg error, looking through Drizzle's wrapper (its `cause`). */
export function sqlState(error: unknown): string | undefined {
  let current: unknown = error;
  // Bounded: a cause chain can be cyclic.
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth++) {
    const code = codeOf(current);
    if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) return code;
    current = "cause" in current ? current.cause : undefined;
  }
  return undefined;
}

/** True when an error from pg means "the database is unavailable right now", not "this is wrong". */
export function isTransientDbError(error: unknown, depth = 0): boolean {
  const code = codeOf(error);
  if (code !== undefined) {
    if (code.startsWith("08")) return true; // connection_exception class
    if (TRANSIENT_SQLSTATES.has(code) || TRANSIENT_NODE_CODES.has(code)) return true;
  }
  if (error instanceof Error) {
    // pg reports a socket closed under it and a pool checkout timeout only by message.
    if (/Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(error.message)) {
      return true;
    }
    if (error.cause !== undefined && depth < 8) return isTransientDbError(error.cause, depth + 1);
  }
  return false;
}

/**
 * A connection to PostgreSQL could not be opened (refused, unresolvable,
 * timed out, refused by the server: bad password, unknown database). It says
 * where, as host:port and never with credentials, so a log or a message reads
 * "cannot connect to PostgreSQL at db:5432" rather than the statement that
 * happened to need the connection; the reason is its cause, and its code
 * (ECONNREFUSED, 28P01, …) is the cause's.
 */
export class DatabaseUnreachableError extends Error {
  override readonly name = "DatabaseUnreachableError";
  readonly code: string | undefined;

  constructor(
    /** host:port, [v6]:port, or the socket directory:port. */
    readonly address: string,
    cause: unknown,
  ) {
    super(`cannot connect to PostgreSQL at ${address}`, { cause });
    this.code = codeOf(cause);
  }
}

/** host:port for messages, with an IPv6 literal in brackets. */
export function databaseAddress(host: string, port: number | string): string {
  return `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
}

/** The DatabaseUnreachableError an error is, or carries as a cause (Drizzle and pg-pool wrap it), if any. */
export function unreachableDatabase(error: unknown): DatabaseUnreachableError | undefined {
  let current: unknown = error;
  // Bounded: a cause chain can be cyclic.
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth++) {
    if (current instanceof DatabaseUnreachableError) return current;
    current = "cause" in current ? current.cause : undefined;
  }
  return undefined;
}
