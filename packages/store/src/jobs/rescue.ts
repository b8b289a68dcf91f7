import { ResponseIX } from "@ix/contracts";
import { and, eq, getTableColumns, lt, sql } from "drizzle-orm";
import type { Executor } from "../db";
import { decideOrphan } from "../lifecycle";
import { ixJobs } from "../schema";
import { clock } from "./row";

export interface RescueParams {
  /** Running rows whose started_at is older than this many seconds are orphans (`lifecycle.orphanHorizonSeconds`). */
  horizonSeconds: number;
  /** Starts allowed before an orphan ends `error` (IX_MAX_ATTEMPTS). */
  maxAttempts: number;
  now?: Date;
}

export interface RescueResult {
  /** Back to pending, to be claimed again. */
  requeued: string[];
  /** Out of attempts: ended `error`. */
  failed: string[];
}

/**
 * Rescues orphaned running jobs, whose worker is presumed dead: each goes back
 * to pending with attempts + 1, or ends `error` once that reaches maxAttempts,
 * as `lifecycle.decideOrphan` decides.
 *
 * The orphans are locked (SKIP LOCKED, so a concurrent rescuer or a completing
 * worker is never waited on), decided here, then updated in one statement
 * fenced on the attempts they were read with. Reading and writing must be one
 * transaction, so this opens one on `db`: on a caller's transaction that is a
 * savepoint, so the function takes any executor like the rest of the repo.
 */
export async function rescueOrphans(
  db: Executor,
  { horizonSeconds, maxAttempts, now }: RescueParams,
): Promise<RescueResult> {
  const at = clock(now);
  return db.transaction(async (tx) => {
    const orphans = await tx
      .select({
        ...getTableColumns(ixJobs),
        // Timestamps also as text, so those written back keep their microseconds.
        startedAtText: sql<string>`${ixJobs.startedAt}::text`,
        now: sql<Date>`${at}`.mapWith(ixJobs.createdAt),
        nowText: sql<string>`(${at})::text`,
      })
      .from(ixJobs)
      .where(
        and(eq(ixJobs.status, "running"), lt(ixJobs.startedAt, sql`${at} - make_interval(secs => ${horizonSeconds}::float8)`)),
      )
      .for("update", { skipLocked: true });
    if (orphans.length === 0) return { requeued: [], failed: [] };

    const columns = {
      jobId: [] as string[],
      fence: [] as number[],
      status: [] as string[],
      attempts: [] as number[],
      startedAt: [] as Array<string | null>,
      finishedAt: [] as Array<string | null>,
      response: [] as Array<string | null>,
      callbackNextAttemptAt: [] as Array<string | null>,
    };
    for (const row of orphans) {
      if (row.startedAt === null) throw new Error(`running job ${row.jobId} has no started_at`);
      const decision = decideOrphan(
        {
          client_id: row.clientId,
          request_id: row.requestId,
          ix_id: row.ixId,
          attempts: row.attempts,
          request: row.request,
          startedAt: row.startedAt,
        },
        { maxAttempts, horizonSeconds, now: row.now },
      );
      const failed = decision.kind === "fail";
      columns.jobId.push(row.jobId);
      columns.fence.push(row.attempts);
      columns.status.push(failed ? "error" : "pending");
      columns.attempts.push(row.attempts + 1);
      columns.startedAt.push(failed ? row.startedAtText : null);
      columns.finishedAt.push(failed ? row.nowText : null);
      columns.response.push(failed ? JSON.stringify(ResponseIX.parse(decision.response)) : null);
      columns.callbackNextAttemptAt.push(failed && row.callbackUrl !== null ? row.nowText : null);
    }
    const applied = await tx.execute<{ job_id: string; status: "pending" | "error" }>(sql`
      update ix_jobs as j set
        status = u.status,
        attempts = u.attempts,
        started_at = u.started_at,
        finished_at = u.finished_at,
        response = u.response,
        callback_next_attempt_at = u.callback_next_attempt_at
      from unnest(
        ${sql.param(columns.jobId)}::uuid[],
        ${sql.param(columns.fence)}::int[],
        ${sql.param(columns.status)}::text[],
        ${sql.param(columns.attempts)}::int[],
        ${sql.param(columns.startedAt)}::timestamptz[],
        ${sql.param(columns.finishedAt)}::timestamptz[],
        ${sql.param(columns.response)}::jsonb[],
        ${sql.param(columns.callbackNextAttemptAt)}::timestamptz[]
      ) as u(job_id, fence, status, attempts, started_at, finished_at, response, callback_next_attempt_at)
      where j.job_id = u.job_id and j.status = 'running' and j.attempts = u.fence
      returning j.job_id, j.status`);
    const result: RescueResult = { requeued: [], failed: [] };
    for (const row of applied.rows) (row.status === "error" ? result.failed : result.requeued).push(row.job_id);
    return result;
  });
}
