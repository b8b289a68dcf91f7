import { z } from "zod";
import { CallbackUrl, Job, JobStatus, Priority, SubmittedMaxAttempts } from "./job";
import { RequestIX } from "./request";

const RUN_AT_MIN_MS = Date.parse("1970-01-01T00:00:00Z");
const RUN_AT_MAX_MS = Date.parse("9999-12-31T23:59:59.999Z");

/**
 * When a submitted job may start at the earliest: an ISO-8601 instant with a
 * `Z` or an offset (`2026-12-01T08:00:00+01:00`). A past instant means now.
 * Bounded to years 1970–9999, which every part of ix (and PostgreSQL) can hold.
 */
export const RunAt = z.iso.datetime({ offset: true }).refine((value) => {
  const ms = Date.parse(value);
  // Not a date at all: the format check has said so already.
  return Number.isNaN(ms) || (ms >= RUN_AT_MIN_MS && ms <= RUN_AT_MAX_MS);
}, "must be an instant between 1970 and 9999");

/**
 * Body of `POST /jobs`: a RequestIX plus where to call back and how to
 * schedule it. The scheduling fields are part of "the same request": a
 * resubmission that changes one of them is a conflict, like a changed request.
 */
export const SubmitJobBody = RequestIX.extend({
  callback_url: CallbackUrl.nullable().optional(),
  /** -100…100, default 0; higher runs first. */
  priority: Priority.optional(),
  /** Not started before this instant; default now. */
  run_at: RunAt.optional(),
  /** 1…25 runs; default the pipeline's retry policy, else the worker's IX_MAX_ATTEMPTS. */
  max_attempts: SubmittedMaxAttempts.optional(),
});
export type SubmitJobBody = z.infer<typeof SubmitJobBody>;

export const JobList = z.strictObject({
  items: z.array(Job),
  next_cursor: z.string().nullable(),
});
export type JobList = z.infer<typeof JobList>;

export const ListJobsQuery = z.strictObject({
  status: JobStatus.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
});
export type ListJobsQuery = z.infer<typeof ListJobsQuery>;

/** One bad field in a validation problem: where it is and what is wrong. */
export const FieldError = z.strictObject({
  path: z.string(),
  message: z.string(),
});
export type FieldError = z.infer<typeof FieldError>;

/** RFC 9457 problem details, with `errors` listing each bad field. */
export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  instance: z.string().optional(),
  errors: z.array(FieldError).optional(),
  job_id: z.uuid().optional(),
});
export type Problem = z.infer<typeof Problem>;

/**
 * Flattens a zod error into one entry per bad field. Unknown keys are reported
 * under their own name so a client sees exactly which key to drop.
 */
export function fieldErrors(error: z.ZodError): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of error.issues) {
    const base = issue.path.map(String);
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        out.push({ path: [...base, key].join("."), message: "unknown key" });
      }
    } else {
      out.push({ path: base.join(".") || "(root)", message: issue.message });
    }
  }
  return out;
}
