import { z } from "zod";
import { ClientId, IxId, RequestId, RequestIX } from "./request";
import { ResponseIX, Timestamp } from "./response";

export const JOB_STATUSES = Object.freeze(["pending", "running", "done", "error"] as const);
export const TERMINAL_JOB_STATUSES = Object.freeze(["done", "error"] as const);
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
  attempts: z.number().int().nonnegative(),
  created_at: Timestamp,
  started_at: Timestamp.nullable(),
  finished_at: Timestamp.nullable(),
});

export type Job = z.infer<typeof Job>;
export type JobStatus = z.infer<typeof JobStatus>;
export type CallbackStatus = z.infer<typeof CallbackStatus>;

export function isTerminal(status: JobStatus): status is "done" | "error" {
  return status === "done" || status === "error";
}
