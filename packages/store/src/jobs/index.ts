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
} from "./callbacks";
export { CANCEL_CHANNEL, cancel, type CancelParams, type CancelResult } from "./cancel";
export { claimPending, claimPendingStatement, type ClaimParams } from "./claim";
export {
  completeMany,
  completeRuns,
  type CompletedRun,
  type CompleteOptions,
  type Completion,
  type UnstorableCompletion,
} from "./complete";
export { assertValidSubmissions, InvalidJobInputError } from "./input";
export {
  ConflictingRowGoneError,
  insertPending,
  insertPendingMany,
  insertPendingManySettled,
  newIxId,
  PENDING_CHANNEL,
  type InsertPendingParams,
  type InsertPendingResult,
} from "./insert";
export { pruneTerminal } from "./prune";
export { get, getByCorrelation, InvalidCursorError, listJobs, type ReadOptions } from "./read";
export { type HeldRun, renewLeases, type RenewLeasesParams, type RenewLeasesResult } from "./lease";
export { rescueOrphans, type RescueParams, type RescueResult } from "./rescue";
export { retry, type RetryParams, type RetryResult } from "./retry";
export { type OnUnreadableRow, readJobRow, type SubmittedSchedule, toJob, type UnreadableRow } from "./row";
