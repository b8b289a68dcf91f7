import type { Job } from "@ix/contracts";
import { asc, eq, sql } from "drizzle-orm";
import type { Executor } from "../db";
import { ixJobs, type JobRow } from "../schema";
import { toJob } from "./row";

export interface ClaimParams {
  limit: number;
}

/**
 * Claims up to `limit` of the oldest pending jobs in one statement: the rows
 * are locked with FOR UPDATE SKIP LOCKED, so concurrent claimers never get the
 * same row and never wait on each other, then set running. Returns them oldest
 * first.
 *
 * The claim commits durably: a claim a server crash forgot would let a second
 * worker run the job while the first run's completion still passes the fence
 * (BENCHMARKS.md records the faster non-durable variant that was reverted).
 */
export async function claimPending(db: Executor, params: ClaimParams): Promise<Job[]> {
  const rows = await claimPendingStatement(db, params);
  return rows.sort(byCreation).map(toJob);
}

/**
 * The claim statement itself, unexecuted, so the benchmark and the plan test
 * can EXPLAIN exactly what `claimPending` runs: `.toSQL()` gives its text and
 * parameters.
 */
export function claimPendingStatement(db: Executor, { limit }: ClaimParams) {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`claim limit must be a positive integer, got ${limit}`);
  const next = db
    .select({ jobId: ixJobs.jobId })
    .from(ixJobs)
    .where(eq(ixJobs.status, "pending"))
    .orderBy(asc(ixJobs.createdAt), asc(ixJobs.jobId))
    .limit(limit)
    .for("update", { skipLocked: true });
  return db
    .update(ixJobs)
    .set({ status: "running", startedAt: sql`now()` })
    // `= any(array(…))` runs the locking subquery once and then fetches each row
    // by primary key; `in (subquery)` can be planned as a scan of the whole
    // table, whose cost grows with the finished rows (BENCHMARKS.md, test/claim-plan.test.ts).
    .where(sql`${ixJobs.jobId} = any(array(${next}))`)
    .returning();
}

function byCreation(a: JobRow, b: JobRow): number {
  const byTime = a.createdAt.getTime() - b.createdAt.getTime();
  return byTime !== 0 ? byTime : a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0;
}
