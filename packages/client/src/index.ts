export { createClient, type Cancelled, type ClientOptions, type IxClient, type ListOptions, type Submitted } from "./client.ts";
export { type CallbackHeaders, verifyCallback } from "./callback.ts";
export {
  IxCallbackVerificationError,
  IxError,
  IxNetworkError,
  IxProblemError,
  IxTimeoutError,
  IxWaitTimeoutError,
} from "./errors.ts";
export type { CallOptions } from "./http.ts";
export type { WaitOptions } from "./wait.ts";
// The contracts' types a caller meets, so using the client needs no second import.
export { isTerminal } from "@ix/contracts";
export type { BatchItemResult, Job, JobList, JobStatus, Problem, SubmitJobInput } from "@ix/contracts";
