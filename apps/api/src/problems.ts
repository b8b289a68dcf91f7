import { STATUS_CODES } from "node:http";
import { fieldErrors, type FieldError, type Problem } from "@ix/contracts";
import { InvalidCursorError, isTransientDbError, unreachableDatabase } from "@ix/store";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import type { z } from "zod";
import { ReadReplicaUnavailableError } from "./reads.ts";
import { SubmissionQueueTimeoutError, SubmissionsClosedError } from "./submission-batcher.ts";

/**
 * Every error the API answers is RFC 9457 problem details. The
 * `type` URIs are stable identifiers a client can switch on; they name the
 * problem, they are not fetched.
 */
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

const PROBLEM_BASE = "https://ix.dev/problems/";

export const PROBLEMS = {
  validation: { status: 400, title: "Request failed validation" },
  "malformed-json": { status: 400, title: "Request body is not valid JSON" },
  "invalid-cursor": { status: 400, title: "Cursor is not one this API issued" },
  "bad-request": { status: 400, title: "Bad request" },
  unauthorized: { status: 401, title: "Missing or unknown API key" },
  forbidden: { status: 403, title: "Key may not act for this client" },
  "not-found": { status: 404, title: "Not found" },
  "request-conflict": { status: 409, title: "request_id already used for a different request" },
  "request-timeout": { status: 408, title: "Request not received in time" },
  "job-state-conflict": { status: 409, title: "The job's status does not allow this" },
  "payload-too-large": { status: 413, title: "Request body too large" },
  "unsupported-media-type": { status: 415, title: "Request body must be application/json" },
  "unknown-use-case": { status: 422, title: "No worker serves this use_case" },
  unavailable: { status: 503, title: "Database unavailable, retry later" },
  internal: { status: 500, title: "Internal error" },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemKind = keyof typeof PROBLEMS;

export function problemType(kind: ProblemKind): string {
  return `${PROBLEM_BASE}${kind}`;
}

export function problem(
  kind: ProblemKind,
  detail?: string,
  extra: { errors?: FieldError[]; job_id?: string; instance?: string; known_use_cases?: string[] } = {},
): Problem {
  const { status, title } = PROBLEMS[kind];
  return { type: problemType(kind), title, status, ...(detail === undefined ? {} : { detail }), ...extra };
}

/** A 400 listing every bad field of `part` (e.g. "request body"), unknown keys by name. */
export function validationProblem(part: string, error: z.ZodError): Problem {
  const errors = fieldErrors(error);
  return problem("validation", `the ${part} has ${errors.length} invalid field(s)`, { errors });
}

export function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  return reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(body);
}

/**
 * A request part failed its zod schema. The original ZodError is kept (the
 * type provider's own error flattens it), so the problem can list every bad
 * field with its path and name unknown keys.
 */
export class RequestValidationError extends Error {
  readonly statusCode = 400;
  /** Set by Fastify: which part failed (body, querystring, params, headers). */
  validationContext?: string;
  constructor(readonly zodError: z.ZodError) {
    super("request failed validation", { cause: zodError });
    this.name = "RequestValidationError";
  }
}

const PART_NAMES: Record<string, string> = {
  body: "request body",
  querystring: "query string",
  params: "path parameters",
  headers: "headers",
};

function statusOf(error: object): number | undefined {
  return "statusCode" in error && typeof error.statusCode === "number" ? error.statusCode : undefined;
}

/**
 * Maps any error a route or Fastify raises to a problem. 4xx errors are the
 * caller's and logged at debug; a transient database error is 503 with
 * Retry-After; anything else is a bug: 500, logged in full, and the
 * body says nothing about internals.
 */
export function problemForError(
  thrown: unknown,
  request: FastifyRequest,
  retryAfterSeconds: number,
): { problem: Problem; headers?: Record<string, string> } {
  const error = thrown instanceof Error ? (thrown as FastifyError) : new Error(`non-Error thrown: ${String(thrown)}`, { cause: thrown });
  if (error instanceof RequestValidationError) {
    const context = error.validationContext ?? "body";
    return { problem: validationProblem(PART_NAMES[context] ?? context, error.zodError) };
  }
  if (error instanceof InvalidCursorError) {
    return { problem: problem("invalid-cursor", "pass back next_cursor exactly as a previous page returned it") };
  }
  if (error instanceof ReadReplicaUnavailableError) {
    request.log.warn({ err: error, read: error.read }, `read replica: ${unreachableDatabase(error)?.message ?? "no answer in time"}; answering 503`);
    return {
      problem: problem(
        "unavailable",
        `the read replica is unavailable or busy, and this list is served only from it; retry after ${retryAfterSeconds} s (a job by its job_id or request_id is read from the primary)`,
      ),
      headers: { "retry-after": String(retryAfterSeconds) },
    };
  }
  // A submission racing the shutdown: another instance (or this one restarted) can take it.
  if (isTransientDbError(error) || error instanceof SubmissionsClosedError || error instanceof SubmissionQueueTimeoutError) {
    request.log.warn({ err: error }, `${unreachableDatabase(error)?.message ?? "database unavailable"}; answering 503`);
    return {
      problem: problem("unavailable", `the job store is unavailable or busy; retry after ${retryAfterSeconds} s`),
      headers: { "retry-after": String(retryAfterSeconds) },
    };
  }
  const code = "code" in error ? error.code : undefined;
  switch (code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return { problem: problem("payload-too-large", error.message) };
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return {
        problem: problem("unsupported-media-type", `got ${JSON.stringify(request.headers["content-type"] ?? null)}`),
      };
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return { problem: problem("malformed-json", error.message) };
  }
  const status = statusOf(error);
  if (status !== undefined && status >= 400 && status < 500) {
    request.log.debug({ err: error }, "client error");
    // e.g. a JSON body with __proto__ (prototype poisoning), a bad Content-Length.
    if (error instanceof SyntaxError) return { problem: problem("malformed-json", error.message) };
    // Statuses ix has no problem type of its own for: RFC 9457's about:blank.
    if (status !== 400) {
      return { problem: { type: "about:blank", title: STATUS_CODES[status] ?? "Client error", status, detail: error.message } };
    }
    return { problem: problem("bad-request", error.message) };
  }
  request.log.error({ err: error }, "unhandled error");
  return { problem: problem("internal", "the error is logged on the server") };
}
