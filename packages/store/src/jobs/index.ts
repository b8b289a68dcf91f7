// The jobs repo, one file per operation. Every function takes an executor
// first (the database or a caller's transaction) and returns validated Jobs.
export { claimDueCallbacks, recordCallbackAttempt, type CallbackDelivery } from "./callbacks";
export { claimPending, claimPendingStatement, type ClaimParams } from "./claim";
export { completeMany, type Completion } from "./complete";
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
export { get, getByCorrelation, InvalidCursorError, listJobs } from "./read";
export { rescueOrphans, type RescueParams, type RescueResult } from "./rescue";
export { toJob } from "./row";
