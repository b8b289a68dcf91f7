import { z } from "zod";
import { CallbackUrl, Job, JobStatus, Priority, SubmittedMaxAttempts } from "./job.ts";
import { RequestIX, UseCase } from "./request.ts";

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
/** What a caller may send as that body: `options` may be left out (it defaults to `{}`). */
export type SubmitJobInput = z.input<typeof SubmitJobBody>;

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
  /** With an unknown use_case (422): the use_cases workers have registered recently, sorted. */
  known_use_cases: z.array(UseCase).optional(),
});
export type Problem = z.infer<typeof Problem>;

/** The most submissions one `POST /jobs/batch` may carry. */
export const MAX_BATCH_JOBS = 1_000;

/**
 * Body of `POST /jobs/batch`: 1…MAX_BATCH_JOBS submissions, each judged as if
 * it had been sent alone to `POST /jobs`. An item that breaks the contract
 * does not fail the request: its own result says why.
 */
export const SubmitJobsBatchBody = z.strictObject({
  jobs: z.array(SubmitJobBody).min(1).max(MAX_BATCH_JOBS),
});
export type SubmitJobsBatchBody = z.infer<typeof SubmitJobsBatchBody>;

/**
 * The answer to one batch item, with the status `POST /jobs` would have given
 * it alone: 201 new job, 200 the same request again (`job`); 400 invalid,
 * 403 another client's ix_client_id, 409 request_id taken by a different
 * request, 413 larger than one submission may be, 422 no worker serves the
 * use_case (`problem`, whose `status` is the same number).
 */
export const BatchItemResult = z.union([
  z.strictObject({ status: z.union([z.literal(201), z.literal(200)]), job: Job }),
  z.strictObject({
    status: z.union([z.literal(400), z.literal(403), z.literal(409), z.literal(413), z.literal(422)]),
    problem: Problem,
  }),
]);
export type BatchItemResult = z.infer<typeof BatchItemResult>;

/** The answer to `POST /jobs/batch`: one result per submitted item, in input order. */
export const BatchResults = z.strictObject({ results: z.array(BatchItemResult) });
export type BatchResults = z.infer<typeof BatchResults>;

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
