export * from "./db.ts";
export { createPool, POOL_MODES, type PoolMode, type PoolOptions } from "./pool.ts";
export * from "./errors.ts";
export * as jobs from "./jobs/index.ts";
export * as workers from "./workers.ts";
export { CANCEL_CHANNEL, PENDING_CHANNEL, InvalidCursorError, type CallbackDelivery, type Completion } from "./jobs/index.ts";
export * from "./migrate.ts";
export { ixCallbackHosts, ixJobs, ixWorkers, type CallbackHostRow, type JobRow, type WorkerRow } from "./schema.ts";
// Re-exported so apps build queries and LISTEN without importing drizzle-orm or pg themselves.
export { sql } from "drizzle-orm";
export { default as pg } from "pg";
export * as lifecycle from "./lifecycle.ts";
export type {
  BreakerPolicy,
  CallbackOutcome,
  CallbackSendResult,
  CancelRequester,
  OrphanCause,
  OrphanDecision,
  RetryBackoff,
  RunOutcome,
  RunRecord,
} from "./lifecycle.ts";
export { logSafeError, logSerializers, logText, logUrl, redactUrl, type LoggedError } from "./log-safe-error.ts";
export * as metrics from "./metrics.ts";
