import { z } from "zod";
import { CallbackUrl, Job, JobStatus } from "./job";
import { RequestIX } from "./request";

/** Body of `POST /jobs`: a RequestIX plus where to call back. */
export const SubmitJobBody = RequestIX.extend({
  callback_url: CallbackUrl.nullable().optional(),
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
