import { type Job, ResponseIX } from "@ix/contracts";
import { and, asc, eq, lte, sql } from "drizzle-orm";
import type { Executor } from "../db";
import { assertLeaseSeconds, DEFAULT_LEASE_SECONDS, errorEntryText, unrunnableResponse } from "../lifecycle";
import { ixJobs, type JobRow } from "../schema";
import { applyRows } from "./complete";
import { clock, type OnUnreadableRow, readJobRow, type UnreadableRow } from "./row";

export interface ClaimParams {
  limit: number;
  /**
   * How long the claimed runs are leased (IX_LEASE_SECONDS): the claimer must
   * renew them (`renewLeases`) before then, or the rescuer takes them back.
   * Default `lifecycle.DEFAULT_LEASE_SECONDS`.
   */
  leaseSeconds?: number;
  /** Told of each claimed row that is not a valid Job; the claim ends it `error` instead of returning it. */
  onUnreadable?: OnUnreadableRow;
  /** The instant that counts as now (which jobs are due, started_at, the lease); default the database's now(). */
  now?: Date;
}

/**
 * Claims up to `limit` of the pending jobs that are due (`run_at <= now`),
 * earliest due first, in one statement: the rows are locked with FOR UPDATE
 * SKIP LOCKED, so concurrent claimers never get the same row and never wait on
 * each other, then set running with a lease of `leaseSeconds`. Returns them in
 * the order they were due.
 *
 * The claim commits durably: a claim a server crash forgot would let a second
 * worker run the job while the first run's completion still passes the fence
 * (BENCHMARKS.md records the faster non-durable variant that was reverted).
 */
export async function claimPending(db: Executor, params: ClaimParams): Promise<Job[]> {
  const rows = await claimPendingStatement(db, params);
  const claimed: Job[] = [];
  const unreadable: Array<{ row: JobRow; unreadable: UnreadableRow }> = [];
  for (const row of rows.sort(byDue)) {
    const read = readJobRow(row);
    if (read.ok) claimed.push(read.job);
    else unreadable.push({ row, unreadable: read.unreadable });
  }
  if (unreadable.length > 0) await endUnrunnable(db, unreadable, params.onUnreadable);
  return claimed;
}

/**
 * Ends claimed rows that are not valid Jobs `error`, fenced, with a response
 * saying why (`lifecycle.unrunnableResponse`): they can never run, and
 * returning them would fail the whole claim. The response is built from the
 * row's own identity; when that identity itself breaks the contract the
 * response cannot be a valid ResponseIX, and it is stored as built anyway,
 * since a finished row is better than one claimed again forever (reads skip
 * such rows). If this statement fails the rows stay `running`, and the rescuer
 * puts them back to be claimed and ended again.
 */
async function endUnrunnable(
  db: Executor,
  rows: Array<{ row: JobRow; unreadable: UnreadableRow }>,
  onUnreadable: OnUnreadableRow | undefined,
): Promise<void> {
  const finish = rows.map(({ row, unreadable }) => {
    const request = row.request as unknown;
    const useCase =
      typeof request === "object" && request !== null && typeof (request as { use_case?: unknown }).use_case === "string"
        ? (request as { use_case: string }).use_case
        : "unknown";
    const response = unrunnableResponse(
      { client_id: row.clientId, request_id: row.requestId, ix_id: row.ixId, request: { use_case: useCase } },
      { reason: unreadable.reason, startedAt: row.startedAt ?? row.createdAt, attempt: row.attempts + 1 },
    );
    const parsed = ResponseIX.safeParse(response);
    return {
      jobId: row.jobId,
      attempts: row.attempts,
      status: "error" as const,
      json: JSON.stringify(parsed.success ? parsed.data : response),
      errorText: errorEntryText(response.error ?? unreadable.reason),
    };
  });
  let ended: Set<string>;
  try {
    ended = new Set((await applyRows(db, finish)).map((run) => run.jobId));
  } catch {
    // Not thrown: the valid rows of this claim are running and must be returned to their claimer.
    ended = new Set();
  }
  for (const { unreadable } of rows) onUnreadable?.(unreadable, ended.has(unreadable.jobId) ? "ended error" : "left running");
}

/**
 * The claim statement itself, unexecuted, so the benchmark and the plan test
 * can EXPLAIN exactly what `claimPending` runs: `.toSQL()` gives its text and
 * parameters.
 */
export function claimPendingStatement(db: Executor, { limit, leaseSeconds = DEFAULT_LEASE_SECONDS, now }: ClaimParams) {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`claim limit must be a positive integer, got ${limit}`);
  assertLeaseSeconds(leaseSeconds);
  const at = clock(now);
  const next = db
    .select({ jobId: ixJobs.jobId })
    .from(ixJobs)
    .where(and(eq(ixJobs.status, "pending"), lte(ixJobs.runAt, at)))
    .orderBy(asc(ixJobs.runAt), asc(ixJobs.jobId))
    .limit(limit)
    .for("update", { skipLocked: true });
  return db
    .update(ixJobs)
    .set({ status: "running", startedAt: at, leaseExpiresAt: sql`${at} + make_interval(secs => ${leaseSeconds}::float8)` })
    // `= any(array(…))` runs the locking subquery once and then fetches each row
    // by primary key; `in (subquery)` can be planned as a scan of the whole
    // table, whose cost grows with the finished rows (BENCHMARKS.md, test/claim-plan.test.ts).
    .where(sql`${ixJobs.jobId} = any(array(${next}))`)
    .returning();
}

function byDue(a: JobRow, b: JobRow): number {
  const byTime = a.runAt.getTime() - b.runAt.getTime();
  return byTime !== 0 ? byTime : a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0;
}
