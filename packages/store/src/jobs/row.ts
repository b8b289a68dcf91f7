import { Job, type TraceContext } from "@ix/contracts";
import { sql, type SQL } from "drizzle-orm";
import type { z } from "zod";
import type { JobRow } from "../schema.ts";

/** The database's clock, or an explicit instant for tests: every time a repo function writes or compares comes from here. */
export function clock(now: Date | undefined): SQL {
  return now ? sql`${now.toISOString()}::timestamptz` : sql`now()`;
}

function iso(value: Date | null): string | null {
  return value === null ? null : value.toISOString();
}

/** Every row leaves the repo as a validated Job contract. */
export function toJob(row: JobRow): Job {
  return Job.parse(jobFields(row));
}

/** The submitter's trace context stored with the row: not part of the Job contract, so runs and callbacks carry it beside the job. */
export function traceContextOf(row: Pick<JobRow, "traceparent" | "tracestate">): TraceContext | null {
  return row.traceparent === null ? null : { traceparent: row.traceparent, tracestate: row.tracestate };
}

/** A row that is not a valid Job (written past the repo's validation): which one, and why, without its values. */
export interface UnreadableRow {
  jobId: string;
  clientId: string;
  reason: string;
}

/**
 * Told of each row that is not a valid Job, and what became of it: a read
 * skips it; a claim ends it `error` (or, if even that failed, leaves it
 * running for the rescuer); a callback claim ends its delivery `failed`. For the caller's log.
 */
export type OnUnreadableRow = (row: UnreadableRow, outcome: "skipped" | "ended error" | "left running" | "delivery failed") => void;

/**
 * `toJob` that does not throw: one bad row must not fail a list, a claim or a
 * delivery batch. The reason names the fields and what is wrong with them,
 * never their values (they may be a client's data).
 */
export function readJobRow(row: JobRow): { ok: true; job: Job } | { ok: false; unreadable: UnreadableRow } {
  const parsed = Job.safeParse(jobFields(row));
  if (parsed.success) return { ok: true, job: parsed.data };
  return { ok: false, unreadable: { jobId: row.jobId, clientId: row.clientId, reason: describeIssues(parsed.error) } };
}

/** `context: must hold at least one text or file; request_id: Too big…`, bounded. */
export function describeIssues(error: z.ZodError, max = 5): string {
  const issues = error.issues.slice(0, max).map((issue) => {
    const path = issue.path.map(String).join(".");
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  if (error.issues.length > max) issues.push(`and ${error.issues.length - max} more`);
  return issues.join("; ");
}

function jobFields(row: JobRow) {
  return {
    job_id: row.jobId,
    ix_id: row.ixId,
    client_id: row.clientId,
    request_id: row.requestId,
    status: row.status,
    request: row.request,
    response: row.response,
    callback_url: row.callbackUrl,
    callback_status: row.callbackStatus,
    attempts: row.attempts,
    created_at: row.createdAt.toISOString(),
    started_at: iso(row.startedAt),
    finished_at: iso(row.finishedAt),
    priority: row.priority,
    run_at: row.runAt.toISOString(),
    max_attempts: row.maxAttempts,
    errors: row.errors,
    cancel_requested_at: iso(row.cancelRequestedAt),
  };
}

/**
 * The scheduling fields as the job's first submission gave them: what a
 * resubmission must repeat to count as the same request. The row's own
 * `run_at` and `max_attempts` move on (retries, manual retries); these do not.
 */
export interface SubmittedSchedule {
  priority: number;
  /** null: not given (the job was due at once). */
  runAt: Date | null;
  /** null: not given (the policy decides). */
  maxAttempts: number | null;
}

export function submittedSchedule(row: Pick<JobRow, "priority" | "submittedRunAt" | "submittedMaxAttempts">): SubmittedSchedule {
  return { priority: row.priority, runAt: row.submittedRunAt, maxAttempts: row.submittedMaxAttempts };
}

