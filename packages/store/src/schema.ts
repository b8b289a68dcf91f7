import {
  CALLBACK_STATUSES,
  JOB_STATUSES,
  type JobError,
  MAX_JOB_ERRORS,
  PRIORITY_MAX,
  PRIORITY_MIN,
  type RequestIX,
  type ResponseIX,
  TERMINAL_JOB_STATUSES,
} from "@ix/contracts";
import { sql } from "drizzle-orm";
import { bigint, check, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { CANCEL_REQUESTERS } from "./lifecycle.ts";

/** `('a', 'b')`: a list of statuses as SQL literals, for the CHECK constraints (the values are code constants). */
function oneOf(values: readonly string[]) {
  return sql.raw(`(${values.map((value) => `'${value}'`).join(", ")})`);
}

/**
 * One row per extraction request: the job, its result and its callback
 * delivery. The lifecycle's invariants (which fields each status requires) are
 * enforced here as CHECK constraints, so no code path (nor a hand-written
 * UPDATE in psql) can store an impossible row.
 */
export const ixJobs = pgTable(
  "ix_jobs",
  {
    jobId: uuid("job_id").primaryKey().defaultRandom(),
    ixId: text("ix_id").notNull(),
    clientId: text("client_id").notNull(),
    requestId: text("request_id").notNull(),
    status: text("status", { enum: JOB_STATUSES }).notNull().default("pending"),
    request: jsonb("request").$type<RequestIX>().notNull(),
    response: jsonb("response").$type<ResponseIX>(),
    callbackUrl: text("callback_url"),
    callbackStatus: text("callback_status", { enum: CALLBACK_STATUSES }),
    // Durable callback delivery: how many POSTs were started, when the next one
    // is due (null = nothing to deliver), and why the last one failed.
    callbackAttempts: integer("callback_attempts").notNull().default(0),
    callbackNextAttemptAt: timestamp("callback_next_attempt_at", { withTimezone: true, precision: 6 }),
    callbackLastError: text("callback_last_error"),
    attempts: integer("attempts").notNull().default(0),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
    startedAt: timestamp("started_at", { withTimezone: true, precision: 6 }),
    finishedAt: timestamp("finished_at", { withTimezone: true, precision: 6 }),
    // Job control (docs/ARCHITECTURE.md, "The job lifecycle").
    priority: integer("priority").notNull().default(0),
    /** Not claimed before this instant: the submission's run_at, then when a retry is due. */
    runAt: timestamp("run_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
    /** Runs allowed; null = the pipeline's retry policy, else the worker's IX_MAX_ATTEMPTS. */
    maxAttempts: integer("max_attempts"),
    /** The failed runs, oldest first, the last MAX_JOB_ERRORS of them. */
    errors: jsonb("errors").$type<JobError[]>().notNull().default(sql`'[]'::jsonb`),
    cancelRequestedAt: timestamp("cancel_requested_at", { withTimezone: true, precision: 6 }),
    /** Who asked for the cancel, for the cancelled response; set with cancel_requested_at. */
    cancelRequestedBy: text("cancel_requested_by", { enum: CANCEL_REQUESTERS }),
    /** A running row's claimer must renew this; once it passes, the rescuer takes the run back. */
    leaseExpiresAt: timestamp("lease_expires_at", { withTimezone: true, precision: 6 }),
    // The scheduling fields as submitted (null = not given), for the 200-vs-409 comparison of a
    // resubmission: run_at moves with retries and a manual retry raises max_attempts.
    submittedRunAt: timestamp("submitted_run_at", { withTimezone: true, precision: 6 }),
    submittedMaxAttempts: integer("submitted_max_attempts"),
    // Scheduling (docs/ARCHITECTURE.md, "Scheduling"). The request's use_case, copied out of the JSON so the
    // claim can route on an index; and the job's place in its client's turn order (jobs/fair-share.ts).
    useCase: text("use_case").notNull(),
    /** Null while the job waits for a later run_at: it gets its turn when due. */
    fairTag: bigint("fair_tag", { mode: "number" }),
    // The submitter's W3C trace context (docs/OPERATIONS.md, "Traces"): the run and the callback join its trace.
    traceparent: text("traceparent"),
    tracestate: text("tracestate"),
  },
  (t) => [
    uniqueIndex("ix_jobs_correlation_key").on(t.clientId, t.requestId),
    // Serves the claim: only due pending rows (they have a turn), per use_case in claim order
    // (priority, then turn), so the index stays small however many terminal or scheduled rows the table holds.
    index("ix_jobs_claim_idx")
      .on(t.useCase, t.priority.desc(), t.fairTag)
      .where(sql`${t.status} = 'pending' and ${t.fairTag} is not null`),
    // Serves the turn assignment: a client's last place in each queue.
    index("ix_jobs_client_queue_idx")
      .on(t.clientId, t.useCase, t.priority, t.fairTag)
      .where(sql`${t.status} = 'pending' and ${t.fairTag} is not null`),
    // Serves the claim's first step: pending rows waiting for their run_at, by when they become due.
    index("ix_jobs_scheduled_idx")
      .on(t.runAt)
      .where(sql`${t.status} = 'pending' and ${t.fairTag} is null`),
    // Serves the rescue: running rows by when their lease runs out.
    index("ix_jobs_running_idx").on(t.leaseExpiresAt).where(sql`${t.status} = 'running'`),
    // Serves the per-use_case concurrency cap (running rows of a use_case) and the queue's current turn.
    index("ix_jobs_running_queue_idx")
      .on(t.useCase, t.priority, t.fairTag)
      .where(sql`${t.status} = 'running'`),
    // Serves callback delivery: due deliveries only.
    index("ix_jobs_callback_due_idx")
      .on(t.callbackNextAttemptAt)
      .where(sql`${t.callbackNextAttemptAt} is not null`),
    // Serves the fair callback claim: it jumps from client to client and reads
    // only each one's oldest due deliveries, instead of ranking every due row.
    index("ix_jobs_callback_client_idx")
      .on(t.clientId, t.callbackNextAttemptAt)
      .where(sql`${t.callbackNextAttemptAt} is not null`),
    // Serves the per-client listing, newest first (keyset pagination, scanned backwards).
    index("ix_jobs_client_created_idx").on(t.clientId, t.createdAt, t.jobId),
    // Serves the operator's failed jobs (the dashboard's listing and bulk retry) across clients, newest or
    // oldest first. Partial: only rows that ended `error` have entries, so the rest of the table's writes never touch it.
    index("ix_jobs_failed_idx")
      .on(t.createdAt, t.jobId)
      .where(sql`${t.status} = 'error'`),
    // Serves pruning: terminal rows by age.
    index("ix_jobs_finished_idx").on(t.finishedAt).where(sql`${t.finishedAt} is not null`),
    check("ix_jobs_status_valid", sql`${t.status} in ${oneOf(JOB_STATUSES)}`),
    check("ix_jobs_callback_status_valid", sql`${t.callbackStatus} is null or ${t.callbackStatus} in ${oneOf(CALLBACK_STATUSES)}`),
    check("ix_jobs_ix_id_format", sql`${t.ixId} ~ '^[0-9a-f]{16}$'`),
    check("ix_jobs_attempts_nonnegative", sql`${t.attempts} >= 0 and ${t.callbackAttempts} >= 0`),
    check("ix_jobs_pending_not_started", sql`${t.status} <> 'pending' or ${t.startedAt} is null`),
    check("ix_jobs_running_started", sql`${t.status} <> 'running' or ${t.startedAt} is not null`),
    check("ix_jobs_finished_iff_terminal", sql`(${t.status} in ${oneOf(TERMINAL_JOB_STATUSES)}) = (${t.finishedAt} is not null)`),
    check("ix_jobs_response_iff_terminal", sql`(${t.status} in ${oneOf(TERMINAL_JOB_STATUSES)}) = (${t.response} is not null)`),
    check("ix_jobs_callback_needs_url", sql`${t.callbackUrl} is not null or (${t.callbackStatus} is null and ${t.callbackNextAttemptAt} is null)`),
    check("ix_jobs_priority_range", sql`${t.priority} between ${sql.raw(String(PRIORITY_MIN))} and ${sql.raw(String(PRIORITY_MAX))}`),
    // A number stays a number (a manual retry only raises it) and never drops below what was submitted.
    check(
      "ix_jobs_max_attempts_valid",
      sql`(${t.maxAttempts} is null) = (${t.submittedMaxAttempts} is null) and ${t.submittedMaxAttempts} >= 1 and ${t.maxAttempts} >= ${t.submittedMaxAttempts}`,
    ),
    check("ix_jobs_errors_bounded", sql`jsonb_typeof(${t.errors}) = 'array' and jsonb_array_length(${t.errors}) <= ${sql.raw(String(MAX_JOB_ERRORS))}`),
    // A lease exists exactly while a run does.
    check("ix_jobs_lease_iff_running", sql`(${t.status} = 'running') = (${t.leaseExpiresAt} is not null)`),
    check(
      "ix_jobs_cancel_requester",
      sql`(${t.cancelRequestedAt} is null) = (${t.cancelRequestedBy} is null) and (${t.cancelRequestedBy} is null or ${t.cancelRequestedBy} in ${oneOf(CANCEL_REQUESTERS)})`,
    ),
    // A cancel is asked for while the job runs (the worker stops it) or ends it at once; every cancelled job was asked.
    check("ix_jobs_cancel_requested_state", sql`${t.cancelRequestedAt} is null or ${t.status} in ('running', 'cancelled')`),
    check("ix_jobs_cancelled_was_requested", sql`${t.status} <> 'cancelled' or ${t.cancelRequestedAt} is not null`),
  ],
);

export type JobRow = typeof ixJobs.$inferSelect;

/**
 * The worker registry: one row per worker process since it started, refreshed
 * with its lease renewals. Routing reads it (which use_cases some worker has
 * served lately, so the API can refuse a use_case nobody runs) and operators
 * read it to see who is alive.
 */
export const ixWorkers = pgTable(
  "ix_workers",
  {
    id: uuid("id").primaryKey(),
    host: text("host").notNull(),
    pid: integer("pid").notNull(),
    /** The use_cases this worker claims (its pipelines, narrowed by IX_WORKER_USE_CASES). */
    useCases: text("use_cases").array().notNull(),
    concurrency: integer("concurrency").notNull(),
    startedAt: timestamp("started_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
  },
  (t) => [
    index("ix_workers_last_seen_idx").on(t.lastSeenAt),
    check("ix_workers_concurrency_positive", sql`${t.concurrency} >= 1`),
    check("ix_workers_pid_positive", sql`${t.pid} >= 1`),
  ],
);

export type WorkerRow = typeof ixWorkers.$inferSelect;

/**
 * Callback receivers that keep failing, by host (`host[:port]` of the callback
 * URL, lowercased): the circuit breaker's state. It lives in the database, not
 * in a worker, so every worker pauses a dead host as soon as one has seen it
 * fail and a restart does not forget it. A host has a row only while its last
 * delivery failed; a success deletes it.
 */
export const ixCallbackHosts = pgTable(
  "ix_callback_hosts",
  {
    host: text("host").primaryKey(),
    /** Failed deliveries in a row that said the host is unhealthy (no answer, 5xx, 429). */
    consecutiveFailures: integer("consecutive_failures").notNull().default(0),
    /** Deliveries to this host are not attempted before this instant; null = not paused. */
    pausedUntil: timestamp("paused_until", { withTimezone: true, precision: 6 }),
    updatedAt: timestamp("updated_at", { withTimezone: true, precision: 6 }).notNull().defaultNow(),
  },
  (t) => [check("ix_callback_hosts_failures_nonnegative", sql`${t.consecutiveFailures} >= 0`)],
);

export type CallbackHostRow = typeof ixCallbackHosts.$inferSelect;
