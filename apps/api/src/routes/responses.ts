import { Problem } from "@ix/contracts";
import { PROBLEM_CONTENT_TYPE } from "../problems.ts";

const DESCRIPTIONS: Record<number, string> = {
  400: "Validation failed (every bad field listed in `errors`), malformed JSON, or a bad cursor",
  401: "Missing or unknown bearer key",
  403: "ix_client_id is not the key's client",
  404: "No such job, route, or not visible to this key",
  409: "request_id already used for a different request; `job_id` names the existing job",
  413: "Body larger than IX_API_BODY_LIMIT_BYTES",
  415: "Body is not application/json",
  503: "Database unavailable or busy; retry after the Retry-After seconds",
};

/** Documented problem+json responses for the given statuses, in the shape the zod type provider understands. */
export function problemResponses(...statuses: number[]) {
  return describedProblemResponses({}, ...statuses);
}

/** `problemResponses`, with some statuses described for this route rather than by the defaults. */
export function describedProblemResponses(descriptions: Record<number, string>, ...statuses: number[]) {
  const out: Record<number, { description: string; content: { [PROBLEM_CONTENT_TYPE]: { schema: typeof Problem } } }> = {};
  for (const status of statuses) {
    const description = descriptions[status] ?? DESCRIPTIONS[status] ?? "Problem";
    out[status] = { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: Problem } } };
  }
  return out;
}

/** A documented application/json response. */
export function jsonResponse<S>(description: string, schema: S) {
  return { description, content: { "application/json": { schema } } };
}
