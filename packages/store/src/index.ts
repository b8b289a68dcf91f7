export * from "./db";
export * from "./errors";
export * as jobs from "./jobs/index";
export * as workers from "./workers";
export { CANCEL_CHANNEL, PENDING_CHANNEL, InvalidCursorError, type CallbackDelivery, type Completion } from "./jobs/index";
export * from "./migrate";
export { ixCallbackHosts, ixJobs, ixWorkers, type CallbackHostRow, type JobRow, type WorkerRow } from "./schema";
// Re-exported so apps build queries and LISTEN without importing drizzle-orm or pg themselves.
export { sql } from "drizzle-orm";
export { default as pg } from "pg";
export * as lifecycle from "./lifecycle";
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
} from "./lifecycle";
export { logSafeError, logSerializers, logText, logUrl, type LoggedError } from "./log-safe-error";
