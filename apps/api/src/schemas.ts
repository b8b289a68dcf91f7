import { ClientId, Job, JobList, ListJobsQuery, Problem, RequestId, SubmitJobBody } from "@ix/contracts";
import { z } from "zod";

/**
 * Route schemas: the contracts, plus what only the HTTP layer knows. The same
 * objects validate requests, serialize responses and generate /openapi.json,
 * so the document cannot drift from what the routes do.
 */

/**
 * Strings PostgreSQL's JSONB cannot store: NUL, and lone UTF-16 surrogates
 * (JSON.stringify writes them as \udXXX escapes that jsonb rejects). Valid
 * JSON and valid by the contracts, they would otherwise fail at insert time;
 * here they are a 400 naming the field.
 */
function unstorable(value: string): string | null {
  if (value.includes("\u0000")) return "must not contain the NUL character (\\u0000)";
  // In u-mode a valid pair is one code point, so \p{Cs} matches only a lone surrogate.
  if (/\p{Cs}/u.test(value)) return "must not contain unpaired UTF-16 surrogates";
  return null;
}

function checkStorable(value: unknown, path: PropertyKey[], ctx: z.RefinementCtx): void {
  if (typeof value === "string") {
    const message = unstorable(value);
    if (message) ctx.addIssue({ code: "custom", path, message });
  } else if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) checkStorable(item, [...path, index], ctx);
  } else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const message = unstorable(key);
      if (message) ctx.addIssue({ code: "custom", path: [...path, key], message: `key ${message}` });
      checkStorable(item, [...path, key], ctx);
    }
  }
}

export const SubmitJobRequest = SubmitJobBody.superRefine((body, ctx) => checkStorable(body, [], ctx));

export const JobIdParams = z.strictObject({ job_id: z.uuid().describe("The job_id returned by POST /jobs") });

/**
 * GET /jobs serves two questions: "the job for my request_id" (correlation,
 * `request_id` set) and "my jobs, newest first" (a page). `client_id` defaults
 * to the caller's when the API runs with keys.
 */
export const JobsQuery = ListJobsQuery.extend({
  client_id: ClientId.optional().describe("Whose jobs; with API keys, defaults to (and must be) the key's client"),
  request_id: RequestId.optional().describe("Correlation: answer the one job with this request_id"),
}).superRefine((query, ctx) => {
  if (query.request_id === undefined) return;
  for (const key of ["status", "cursor"] as const) {
    if (query[key] !== undefined) {
      ctx.addIssue({ code: "custom", path: [key], message: "cannot be combined with request_id" });
    }
  }
});
export type JobsQuery = z.infer<typeof JobsQuery>;

export const Health = z.strictObject({ status: z.literal("ok") });

export const Readiness = z.strictObject({
  status: z.literal("ready"),
  migrations: z.strictObject({ applied: z.array(z.string()) }),
});

// Named components in /openapi.json (jsonSchemaTransformObject reads the global registry).
for (const [schema, id] of [
  [Job, "Job"],
  [JobList, "JobList"],
  [Problem, "Problem"],
] as const) {
  if (!z.globalRegistry.has(schema)) z.globalRegistry.add(schema, { id });
}
