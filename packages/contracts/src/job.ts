import { z } from "zod";
import { ClientId, IxId, RequestId, RequestIX } from "./request.ts";
import { ResponseIX, Timestamp } from "./response.ts";

export const JOB_STATUSES = Object.freeze(["pending", "running", "done", "error", "cancelled"] as const);
export const TERMINAL_JOB_STATUSES = Object.freeze(["done", "error", "cancelled"] as const);
export const CALLBACK_STATUSES = Object.freeze(["delivered", "failed"] as const);

export const JobStatus = z.enum(JOB_STATUSES);
export const CallbackStatus = z.enum(CALLBACK_STATUSES);

/** A callback target: http(s) only, bounded so it fits in logs and headers. */
export const CallbackUrl = z
  .string()
  .max(2048)
  .refine((value) => {
    if (!URL.canParse(value)) return false;
    const { protocol } = new URL(value);
    return protocol === "http:" || protocol === "https:";
  }, "must be an http or https URL");

/** Scheduling order: higher runs first (the scheduler uses it; ix stores it from the submission on). */
export const PRIORITY_MIN = -100;
export const PRIORITY_MAX = 100;
export const Priority = z.number().int().min(PRIORITY_MIN).max(PRIORITY_MAX);

/** The most runs a submission may ask for; a manual retry may take a job past it, one run at a time. */
export const MAX_ATTEMPTS_LIMIT = 25;
export const SubmittedMaxAttempts = z.number().int().min(1).max(MAX_ATTEMPTS_LIMIT);

/** How many failed runs a job remembers in `errors`: the last ones, oldest first. */
export const MAX_JOB_ERRORS = 20;

/** One failed run: which run (1-based), when it failed, and its error. */
export const JobError = z.strictObject({
  attempt: z.number().int().positive(),
  at: Timestamp,
  error: z.string(),
});
export type JobError = z.infer<typeof JobError>;

/** A job as ix stores and serves it. */
export const Job = z.strictObject({
  job_id: z.uuid(),
  ix_id: IxId,
  client_id: ClientId,
  request_id: RequestId,
  status: JobStatus,
  request: RequestIX,
  response: ResponseIX.nullable(),
  callback_url: CallbackUrl.nullable(),
  callback_status: CallbackStatus.nullable(),
  /** Runs that ended without being the job's last (orphaned, or failed and retried); the current run is `attempts + 1`. */
  attempts: z.number().int().nonnegative(),
  created_at: Timestamp,
  started_at: Timestamp.nullable(),
  finished_at: Timestamp.nullable(),
  priority: Priority,
  /** Not started before this instant; a retry moves it to when the next run is due. */
  run_at: Timestamp,
  /**
   * Runs allowed before a retryable failure ends the job `error`. null: not given at submission, so the
   * pipeline's retry policy decides, else the worker's IX_MAX_ATTEMPTS. A manual retry raises a number by one.
   */
  max_attempts: z.number().int().positive().nullable(),
  /** Every failed run, retried or final, oldest first; only the last MAX_JOB_ERRORS are kept. */
  errors: z.array(JobError).max(MAX_JOB_ERRORS),
  /** When a cancel of this job was asked for; set on every cancelled job and on a running one being stopped. */
  cancel_requested_at: Timestamp.nullable(),
});

export type Job = z.infer<typeof Job>;
export type JobStatus = z.infer<typeof JobStatus>;
export type CallbackStatus = z.infer<typeof CallbackStatus>;

export type TerminalJobStatus = (typeof TERMINAL_JOB_STATUSES)[number];

/** true for `done`, `error` and `cancelled`: the job will not run again unless retried by hand. */
export function isTerminal(status: JobStatus): status is TerminalJobStatus {
  return (TERMINAL_JOB_STATUSES as readonly string[]).includes(status);
}
