export * from "./db";
export * from "./errors";
export * as jobs from "./jobs";
export { PENDING_CHANNEL, InvalidCursorError, type CallbackDelivery, type CallbackOutcome, type Completion } from "./jobs";
export * from "./migrate";
export { ixJobs, type JobRow } from "./schema";
// Re-exported so apps build queries and LISTEN without importing drizzle-orm or pg themselves (spec §1).
export { sql } from "drizzle-orm";
export { default as pg } from "pg";
export * as lifecycle from "./lifecycle";
export type { CallbackSendResult, OrphanDecision, RunRecord } from "./lifecycle";
export { logSafeError, logSerializers, type LoggedError } from "./log-safe-error";
