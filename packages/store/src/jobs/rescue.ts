import { ResponseIX } from "@ix/contracts";
import { and, eq, getTableColumns, lte, or, sql } from "drizzle-orm";
import type { Executor } from "../db.ts";
import { decideOrphan, effectiveMaxAttempts, errorEntryText, orphanedRunError } from "../lifecycle.ts";
import { ixJobs } from "../schema.ts";
import { appendedErrors } from "./errors-list.ts";
import { clock } from "./row.ts";

/** Held for the length of one rescue's transaction, so one rescuer acts at a time (any constant, the same in every ix process). */
const RESCUE_LOCK_KEY = 0x1c_5c0e;

export interface RescueParams {
  /**
   * A running row that started longer ago than this many seconds is an orphan
   * even if its lease is current (`lifecycle.orphanHorizonSeconds`): the
   * backstop for a run whose worker renews it but never finishes it.
   */
  horizonSeconds: number;
  /** Runs allowed for a job whose own max_attempts is null and whose pipeline has no policy (IX_MAX_ATTEMPTS). */
  maxAttempts: number;
  /** The retry policy's max_attempts of a use case's pipeline, if it has one; used before `maxAttempts`. */
  policyMaxAttempts?: (useCase: string) => number | undefined;
  now?: Date;
}

export interface RescueResult {
  /** Another rescuer held the rescue lock, so this one did nothing. */
  skipped: boolean;
  /** Back to pending, to be claimed again. */
  requeued: string[];
  /** Out of attempts: ended `error`. */
  failed: string[];
  /** A cancel had been requested: ended `cancelled`. */
  cancelled: string[];
}

/**
 * Rescues orphaned running jobs, whose worker is presumed dead or frozen: its
 * lease ran out, or the run started before the horizon. Each goes back to
 * pending with attempts + 1, or ends `error` once that reaches its max
 * attempts, or ends `cancelled` when a cancel was requested, as
 * `lifecycle.decideOrphan` decides; the orphaned run is appended to `errors`
 * unless the job ends cancelled.
 *
 * One rescuer acts at a time: the others find the advisory lock taken and
 * return `skipped` at once. The orphans are locked (SKIP LOCKED, so a
 * completing worker or a cancel is never waited on), decided here, then
 * updated in one statement fenced on the attempts they were read with.
 * Reading and writing must be one transaction, so this opens one on `db`: on
 * a caller's transaction that is a savepoint, and the lock is then held until
 * the caller's transaction ends.
 */
export async function rescueOrphans(
  db: Executor,
  { horizonSeconds, maxAttempts, policyMaxAttempts, now }: RescueParams,
): Promise<RescueResult> {
  const at = clock(now);
  return db.transaction(async (tx) => {
    const result: RescueResult = { skipped: false, requeued: [], failed: [], cancelled: [] };
    const lock = await tx.execute<{ locked: boolean }>(sql`select pg_try_advisory_xact_lock(${RESCUE_LOCK_KEY}) as locked`);
    if (!lock.rows[0]?.locked) return { ...result, skipped: true };

    const leaseExpired = lte(ixJobs.leaseExpiresAt, at);
    const orphans = await tx
      .select({
        ...getTableColumns(ixJobs),
        // Timestamps also as text, so those written back keep their microseconds.
        startedAtText: sql<string>`${ixJobs.startedAt}::text`,
        now: sql<Date>`${at}`.mapWith(ixJobs.createdAt),
        nowText: sql<string>`(${at})::text`,
        leaseExpired: sql<boolean>`coalesce(${leaseExpired}, false)`,
      })
      .from(ixJobs)
      .where(
        and(
          eq(ixJobs.status, "running"),
          or(leaseExpired, sql`${ixJobs.startedAt} < ${at} - make_interval(secs => ${horizonSeconds}::float8)`),
        ),
      )
      .for("update", { skipLocked: true });
    if (orphans.length === 0) return result;

    const columns = {
      jobId: [] as string[],
      fence: [] as number[],
      status: [] as string[],
      startedAt: [] as Array<string | null>,
      finishedAt: [] as Array<string | null>,
      response: [] as Array<string | null>,
      callbackNextAttemptAt: [] as Array<string | null>,
      errorText: [] as Array<string | null>,
    };
    for (const row of orphans) {
      if (row.startedAt === null) throw new Error(`running job ${row.jobId} has no started_at`);
      const cause = row.leaseExpired ? "lease" : "horizon";
      const decision = decideOrphan(
        {
          client_id: row.clientId,
          request_id: row.requestId,
          ix_id: row.ixId,
          attempts: row.attempts,
          request: row.request,
          startedAt: row.startedAt,
          cancelRequestedBy: row.cancelRequestedBy,
        },
        {
          maxAttempts: effectiveMaxAttempts(row.maxAttempts, policyMaxAttempts?.(row.request.use_case), maxAttempts),
          horizonSeconds,
          now: row.now,
          cause,
        },
      );
      const ended = decision.kind !== "requeue";
      columns.jobId.push(row.jobId);
      columns.fence.push(row.attempts);
      columns.status.push(decision.kind === "requeue" ? "pending" : decision.kind === "fail" ? "error" : "cancelled");
      columns.startedAt.push(ended ? row.startedAtText : null);
      columns.finishedAt.push(ended ? row.nowText : null);
      columns.response.push(ended ? JSON.stringify(ResponseIX.parse(decision.response)) : null);
      columns.callbackNextAttemptAt.push(ended && row.callbackUrl !== null ? row.nowText : null);
      columns.errorText.push(decision.kind === "cancel" ? null : errorEntryText(orphanedRunError(cause, horizonSeconds)));
    }
    const applied = await tx.execute<{ job_id: string; status: "pending" | "error" | "cancelled" }>(sql`
      update ix_jobs as j set
        status = u.status,
        attempts = j.attempts + 1,
        started_at = u.started_at,
        finished_at = u.finished_at,
        response = u.response,
        lease_expires_at = null,
        callback_next_attempt_at = u.callback_next_attempt_at,
        errors = case when u.error_text is null then j.errors
          else ${appendedErrors({ errors: sql.raw("j.errors"), attempt: sql.raw("j.attempts + 1"), at, error: sql.raw("u.error_text") })} end
      from unnest(
        ${sql.param(columns.jobId)}::uuid[],
        ${sql.param(columns.fence)}::int[],
        ${sql.param(columns.status)}::text[],
        ${sql.param(columns.startedAt)}::timestamptz[],
        ${sql.param(columns.finishedAt)}::timestamptz[],
        ${sql.param(columns.response)}::jsonb[],
        ${sql.param(columns.callbackNextAttemptAt)}::timestamptz[],
        ${sql.param(columns.errorText)}::text[]
      ) as u(job_id, fence, status, started_at, finished_at, response, callback_next_attempt_at, error_text)
      where j.job_id = u.job_id and j.status = 'running' and j.attempts = u.fence
      returning j.job_id, j.status`);
    for (const row of applied.rows) {
      (row.status === "error" ? result.failed : row.status === "cancelled" ? result.cancelled : result.requeued).push(row.job_id);
    }
    return result;
  });
}
