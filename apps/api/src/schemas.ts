import {
  BatchResults,
  ClientId,
  Job,
  JobList,
  ListJobsQuery,
  MAX_BATCH_JOBS,
  Problem,
  RequestId,
  SubmitJobBody,
  SubmitJobsBatchBody,
  UseCase,
} from "@ix/contracts";
import { type CallbackTargetPolicy, createCallbackTargetPolicy, ipLiteralRefusal } from "@ix/contracts/callback-target";
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

/** How deep objects and arrays may nest in a submission: far beyond any real request, far below a stack's depth. */
export const MAX_NESTING = 64;

/**
 * Walks the whole body once, iteratively (a recursive walk overflowed the
 * stack on a small body nested thousands deep): strings and keys JSONB cannot
 * store, and nesting deeper than MAX_NESTING, each become an issue at its path.
 * Past the depth limit nothing further is walked, so the cost stays linear in
 * the body's size.
 */
function checkStorable(body: unknown, ctx: z.RefinementCtx): void {
  const stack: Array<{ value: unknown; path: PropertyKey[] }> = [{ value: body, path: [] }];
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    const { value, path } = frame;
    if (typeof value === "string") {
      const message = unstorable(value);
      if (message) ctx.addIssue({ code: "custom", path, message });
      continue;
    }
    if (typeof value !== "object" || value === null) continue;
    // The body itself is level 1: a container at path length MAX_NESTING would be level MAX_NESTING + 1.
    if (path.length >= MAX_NESTING) {
      ctx.addIssue({ code: "custom", path, message: `objects and arrays may nest at most ${MAX_NESTING} levels deep` });
      continue;
    }
    const children: Array<[PropertyKey, unknown]> = Array.isArray(value) ? [...value.entries()] : Object.entries(value);
    // Pushed in reverse, so issues come out in document order.
    for (let index = children.length - 1; index >= 0; index--) {
      const [key, item] = children[index]!;
      if (typeof key === "string") {
        const message = unstorable(key);
        if (message) ctx.addIssue({ code: "custom", path: [...path, key], message: `key ${message}` });
      }
      stack.push({ value: item, path: [...path, key] });
    }
  }
}

/**
 * The POST /jobs body: the contract, plus what only the API checks: storable
 * strings, bounded nesting, and a callback_url whose host is an IP literal
 * must pass the callback target policy (a hostname is checked by the worker
 * on the address it resolves to).
 */
export function submitJobRequest(policy: CallbackTargetPolicy) {
  return SubmitJobBody.superRefine((body, ctx) => {
    checkStorable(body, ctx);
    if (typeof body.callback_url === "string") {
      const refusal = ipLiteralRefusal(body.callback_url, policy);
      if (refusal !== null) ctx.addIssue({ code: "custom", path: ["callback_url"], message: refusal });
    }
  });
}

/** With the default policy (no IX_CALLBACK_ALLOWED_HOSTS). */
export const SubmitJobRequest = submitJobRequest(createCallbackTargetPolicy());

/**
 * What `POST /jobs/batch` itself validates: the envelope. A bad item must not
 * fail the request, so items are left as they came and each is parsed with
 * the `POST /jobs` schema by itself; the route documents SubmitJobsBatchBody,
 * the same envelope with its items spelled out.
 */
export const BatchEnvelope = z.strictObject({ jobs: z.array(z.unknown()).min(1).max(MAX_BATCH_JOBS) });

export const JobIdParams = z.strictObject({ job_id: z.uuid().describe("The job_id returned by POST /jobs") });

/**
 * GET /jobs serves two questions: "the job for my request_id" (correlation,
 * `request_id` set) and "my jobs, newest first" (a page). `client_id` defaults
 * to the caller's when the API runs with keys.
 */
export const JobsQuery = ListJobsQuery.extend({
  client_id: ClientId.optional().describe(
    "Whose jobs; with a client key, defaults to (and must be) the key's client; with an admin key or without keys, every client's when absent",
  ),
  use_case: UseCase.optional().describe("Only jobs of this use_case"),
  request_id: RequestId.optional().describe("Correlation: answer the one job with this request_id"),
}).superRefine((query, ctx) => {
  if (query.request_id === undefined) return;
  for (const key of ["status", "cursor", "use_case"] as const) {
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
  [SubmitJobBody, "Submission"],
  [SubmitJobsBatchBody, "SubmissionBatch"],
  [BatchResults, "BatchResults"],
] as const) {
  if (!z.globalRegistry.has(schema)) z.globalRegistry.add(schema, { id });
}

/**
 * The W3C Trace Context headers POST /jobs and POST /jobs/batch read: documented, never refused.
 * A loose object, so validating it keeps every other header.
 */
export const TraceHeaders = z.looseObject({
  traceparent: z
    .string()
    .optional()
    .describe(
      "W3C traceparent of the caller's span. Stored with the job (the first submission's wins): the worker's run is a span in this trace " +
        "and the callback carries a traceparent of it. An invalid value is ignored, as the W3C Trace Context spec asks.",
    ),
  tracestate: z.string().optional().describe("W3C tracestate, kept with a valid traceparent (up to 512 characters)"),
});
