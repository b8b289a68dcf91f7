// The jobs repo, one file per operation. Every function takes an executor
// first (the database or a caller's transaction) and returns validated Jobs.
export {
  callbackHost,
  claimDueCallbacks,
  recordCallbackAttempt,
  recordHostHealth,
  type CallbackDelivery,
  type ClaimDueCallbacksParams,
  type HostHealthResult,
} from "./callbacks.ts";
export { CANCEL_CHANNEL, cancel, type CancelParams, type CancelResult } from "./cancel.ts";
export { claimPending, claimPendingRuns, claimPendingStatement, type ClaimedRun, type ClaimParams } from "./claim.ts";
export {
  completeMany,
  completeRuns,
  type CompletedRun,
  type CompleteOptions,
  type Completion,
  type UnstorableCompletion,
} from "./complete.ts";
export { assertValidSubmissions, InvalidJobInputError } from "./input.ts";
export {
  ConflictingRowGoneError,
  insertPending,
  insertPendingMany,
  insertPendingManySettled,
  newIxId,
  PENDING_CHANNEL,
  type InsertPendingParams,
  type InsertPendingResult,
} from "./insert.ts";
export { pruneTerminal } from "./prune.ts";
export { get, getByCorrelation, inspect, InvalidCursorError, type JobInspection, listJobs, type ListJobsParams, type ReadOptions } from "./read.ts";
export { OVERVIEW_WINDOW_MINUTES, queueOverview, type QueueOverview } from "./overview.ts";
export { countFailed, type FailedJobsFilter, RETRY_FAILED_LIMIT, retryFailed } from "./retry-failed.ts";
export { type HeldRun, renewLeases, type RenewLeasesParams, type RenewLeasesResult } from "./lease.ts";
export { rescueOrphans, type RescueParams, type RescueResult } from "./rescue.ts";
export { retry, type RetryParams, type RetryResult } from "./retry.ts";
export { type OnUnreadableRow, readJobRow, type SubmittedSchedule, toJob, traceContextOf, type UnreadableRow } from "./row.ts";
