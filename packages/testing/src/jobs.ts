import { type CallbackStatus, isTerminal, type Job, type JobError, type JobStatus, type RequestIX, type ResponseIX } from "@ix/contracts";
import { type CancelRequester, type Executor, ixJobs, jobs, lifecycle, sql } from "@ix/store";
import { sampleRequest } from "./sample-request.ts";

/**
 * A job row in any state, for tests that need one without driving the
 * lifecycle there. Every field is optional; the defaults satisfy the table's
 * CHECK constraints for the chosen status, so a fixture only names what its
 * test is about.
 */
export interface JobFixture {
  /** Default `pending`. */
  status?: JobStatus;
  /** Default a fresh `sampleRequest()`; its ix_id is replaced by the job's, as ix does on submission. */
  request?: RequestIX;
  /** Default a fresh one, as `jobs.newIxId` makes them. */
  ixId?: string;
  /** Runs started before the current one (the completion fence). Default 0. */
  attempts?: number;
  /** Default the database's now(). */
  createdAt?: Date;
  /** Default now() when running or terminal, null when pending. */
  startedAt?: Date | null;
  /** Default now() when terminal, null otherwise. */
  finishedAt?: Date | null;
  /**
   * Default null unless terminal; then a response built by `lifecycle.buildResponse`:
   * a result for `done`, the error "failed in a test fixture" for `error`.
   */
  response?: ResponseIX | null;
  callbackUrl?: string | null;
  callbackStatus?: CallbackStatus | null;
  callbackAttempts?: number;
  /** Default finishedAt for a terminal job with a callback_url still to deliver (as completion leaves it), else null. */
  callbackNextAttemptAt?: Date | null;
  callbackLastError?: string | null;
  /** Default 0. */
  priority?: number;
  /** Default createdAt (as a submission without run_at leaves it). */
  runAt?: Date;
  /** The job's turn in its queue (fair share); default 0, so factory jobs of one queue go by run_at. */
  fairTag?: number;
  /** Default null (the policy decides); sets the submitted max_attempts too. */
  maxAttempts?: number | null;
  /** Default []. */
  errors?: JobError[];
  /** Default now() for a cancelled job, null otherwise. */
  cancelRequestedAt?: Date | null;
  /** Default `client` when cancelRequestedAt is set. */
  cancelRequestedBy?: CancelRequester | null;
  /** Default now() + `lifecycle.DEFAULT_LEASE_SECONDS` for a running job, null otherwise. */
  leaseExpiresAt?: Date | null;
}

async function databaseNow(db: Executor): Promise<Date> {
  const result = await db.execute<{ ms: number }>(sql`select (extract(epoch from now()) * 1000)::float8 as ms`);
  const ms = result.rows[0]?.ms;
  if (ms === undefined) throw new Error("select now() returned no row");
  return new Date(ms);
}

/**
 * Inserts one job in whatever state the fixture describes (River's
 * `testfactory.Job` idea) and returns it as the repo would. A fixture that
 * contradicts itself (`running` without started_at, say) is refused by the
 * table's CHECK constraints, like any other impossible row.
 */
export async function insertJob(db: Executor, fixture: JobFixture = {}): Promise<Job> {
  const status = fixture.status ?? "pending";
  const terminal = isTerminal(status);
  const now = await databaseNow(db);
  const ixId = fixture.ixId ?? jobs.newIxId();
  const request: RequestIX = { ...(fixture.request ?? sampleRequest()), ix_id: ixId };
  const attempts = fixture.attempts ?? 0;
  const startedAt = fixture.startedAt !== undefined ? fixture.startedAt : status === "pending" ? null : now;
  const finishedAt = fixture.finishedAt !== undefined ? fixture.finishedAt : terminal ? now : null;
  const callbackUrl = fixture.callbackUrl ?? null;
  const callbackStatus = fixture.callbackStatus ?? null;
  const cancelRequestedAt = fixture.cancelRequestedAt !== undefined ? fixture.cancelRequestedAt : status === "cancelled" ? now : null;
  const cancelRequestedBy = fixture.cancelRequestedBy !== undefined ? fixture.cancelRequestedBy : cancelRequestedAt ? "client" : null;
  const response =
    fixture.response !== undefined
      ? fixture.response
      : terminal
        ? lifecycle.buildResponse(
            { client_id: request.ix_client_id, request_id: request.request_id, ix_id: ixId, request },
            {
              pipeline: request.use_case,
              error:
                status === "error"
                  ? "failed in a test fixture"
                  : status === "cancelled"
                    ? lifecycle.cancelReason(cancelRequestedBy ?? "client", startedAt ? "running" : "pending")
                    : null,
              result: status === "done" ? {} : null,
              startedAt: startedAt ?? now,
              finishedAt: finishedAt ?? now,
              durationMs: (finishedAt ?? now).getTime() - (startedAt ?? now).getTime(),
              attempt: attempts + 1,
            },
          )
        : null;
  const callbackNextAttemptAt =
    fixture.callbackNextAttemptAt !== undefined
      ? fixture.callbackNextAttemptAt
      : terminal && callbackUrl !== null && callbackStatus === null
        ? finishedAt
        : null;
  const [row] = await db
    .insert(ixJobs)
    .values({
      ixId,
      clientId: request.ix_client_id,
      requestId: request.request_id,
      status,
      request,
      response,
      callbackUrl,
      callbackStatus,
      callbackAttempts: fixture.callbackAttempts ?? 0,
      callbackNextAttemptAt,
      callbackLastError: fixture.callbackLastError ?? null,
      attempts,
      createdAt: fixture.createdAt ?? now,
      startedAt,
      finishedAt,
      priority: fixture.priority ?? 0,
      useCase: request.use_case,
      fairTag: fixture.fairTag ?? 0,
      runAt: fixture.runAt ?? fixture.createdAt ?? now,
      maxAttempts: fixture.maxAttempts ?? null,
      submittedMaxAttempts: fixture.maxAttempts ?? null,
      errors: fixture.errors ?? [],
      cancelRequestedAt,
      cancelRequestedBy,
      leaseExpiresAt:
        fixture.leaseExpiresAt !== undefined
          ? fixture.leaseExpiresAt
          : status === "running"
            ? lifecycle.leaseExpiresAt(now, lifecycle.DEFAULT_LEASE_SECONDS)
            : null,
    })
    .returning();
  if (!row) throw new Error("insert into ix_jobs returned no row");
  return jobs.toJob(row);
}

/** A job's callback delivery bookkeeping, which the Job contract does not carry; null when there is no such job. */
export async function callbackState(
  db: Executor,
  jobId: string,
): Promise<{ attempts: number; nextAttemptAt: Date | null; lastError: string | null } | null> {
  const rows = await db
    .select({
      attempts: ixJobs.callbackAttempts,
      nextAttemptAt: ixJobs.callbackNextAttemptAt,
      lastError: ixJobs.callbackLastError,
    })
    .from(ixJobs)
    .where(sql`${ixJobs.jobId} = ${jobId}`);
  return rows[0] ?? null;
}

/** Sets callback_status and nothing else; reports whether the job exists. */
export async function setCallbackStatus(
  db: Executor,
  { jobId, callbackStatus }: { jobId: string; callbackStatus: CallbackStatus | null },
): Promise<boolean> {
  const rows = await db
    .update(ixJobs)
    .set({ callbackStatus })
    .where(sql`${ixJobs.jobId} = ${jobId}`)
    .returning({ jobId: ixJobs.jobId });
  return rows.length === 1;
}
