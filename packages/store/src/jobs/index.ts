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
export { claimPending, claimPendingStatement, type ClaimParams } from "./claim";
export { completeMany, type CompleteOptions, type Completion, type UnstorableCompletion } from "./complete";
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
export { rescueOrphans, type RescueParams, type RescueResult } from "./rescue";
export { type OnUnreadableRow, readJobRow, toJob, type UnreadableRow } from "./row";
