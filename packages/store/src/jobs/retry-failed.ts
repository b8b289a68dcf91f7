import { and, asc, eq, getTableColumns, inArray, sql } from "drizzle-orm";
import type { Executor } from "../db.ts";
import { decideManualRetry } from "../lifecycle.ts";
import { ixJobs } from "../schema.ts";
import { PENDING_CHANNEL } from "./insert.ts";
import { manualRetryReset, RETRYABLE_STATUSES } from "./retry.ts";
import { clock, readJobRow } from "./row.ts";

/** The most jobs one bulk retry changes: one transaction stays short, and an operator sees what it did. */
export const RETRY_FAILED_LIMIT = 1_000;

/** Which failed jobs: every client's and use_case's unless narrowed. */
export interface FailedJobsFilter {
  clientId?: string;
  useCase?: string;
}

function failedWhere({ clientId, useCase }: FailedJobsFilter) {
  return and(
    eq(ixJobs.status, "error"),
    clientId === undefined ? undefined : eq(ixJobs.clientId, clientId),
    useCase === undefined ? undefined : eq(ixJobs.useCase, useCase),
  );
}

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > RETRY_FAILED_LIMIT) {
    throw new RangeError(`limit must be an integer from 1 to ${RETRY_FAILED_LIMIT}, got ${limit}`);
  }
}

/**
 * How many jobs ended `error` under the filter, counted up to `cap` (more: `cap + 1`), so the count
 * an operator confirms costs at most that many entries of `ix_jobs_failed_idx`.
 */
export async function countFailed(db: Executor, filter: FailedJobsFilter & { cap: number }): Promise<number> {
  checkLimit(filter.cap);
  const { rows } = await db.execute<{ n: number }>(sql`
    select count(*)::int as n from (select 1 from ${ixJobs} where ${failedWhere(filter)} limit ${filter.cap + 1}) capped`);
  return rows[0]?.n ?? 0;
}

/**
 * Bulk manual retry: up to `limit` jobs that ended `error` under the filter, oldest first, each put back
 * to `pending` exactly as `retry` would (`lifecycle.decideManualRetry`, `manualRetryReset`), in one
 * transaction: a locking read, then one update of them all. Rows locked by someone else (a single retry
 * or cancel in flight) are skipped rather than waited for, and a row that is not a valid Job is left
 * alone. Workers are woken once. Returns the ids retried; fewer than `limit` means none are left.
 */
export async function retryFailed(
  db: Executor,
  params: FailedJobsFilter & { limit: number; now?: Date },
): Promise<{ retried: string[] }> {
  checkLimit(params.limit);
  const at = clock(params.now);
  return db.transaction(async (tx) => {
    const rows = await tx
      .select()
      .from(ixJobs)
      .where(failedWhere(params))
      .orderBy(asc(ixJobs.createdAt), asc(ixJobs.jobId))
      .limit(params.limit)
      .for("update", { skipLocked: true });
    const decided = rows.flatMap((row) => {
      const read = readJobRow(row);
      return read.ok ? [{ jobId: row.jobId, ...decideManualRetry(read.job) }] : [];
    });
    if (decided.length === 0) return { retried: [] };
    const ids = decided.map((d) => d.jobId);
    const updated = await tx
      .update(ixJobs)
      .set({ ...manualRetryReset(at), attempts: sql`decided.attempts`, maxAttempts: sql`decided.max_attempts` })
      .from(
        sql`unnest(${`{${ids.join(",")}}`}::uuid[], ${`{${decided.map((d) => d.attempts).join(",")}}`}::int[], ${`{${decided
          .map((d) => d.maxAttempts ?? "NULL")
          .join(",")}}`}::int[]) as decided(job_id, attempts, max_attempts)`,
      )
      .where(and(eq(ixJobs.jobId, sql`decided.job_id`), inArray(ixJobs.status, [...RETRYABLE_STATUSES])))
      .returning({ jobId: getTableColumns(ixJobs).jobId });
    if (updated.length !== decided.length) throw new Error("failed jobs changed under their row locks");
    await tx.execute(sql`select pg_notify(${PENDING_CHANNEL}, '')`);
    return { retried: updated.map((row) => row.jobId) };
  });
}
