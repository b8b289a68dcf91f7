import { type Job, ResponseIX } from "@ix/contracts";
import { asc, eq, sql } from "drizzle-orm";
import type { Executor } from "../db";
import { unrunnableResponse } from "../lifecycle";
import { ixJobs, type JobRow } from "../schema";
import { applyRows } from "./complete";
import { type OnUnreadableRow, readJobRow, type UnreadableRow } from "./row";

export interface ClaimParams {
  limit: number;
  /** Told of each claimed row that is not a valid Job; the claim ends it `error` instead of returning it. */
  onUnreadable?: OnUnreadableRow;
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
  const claimed: Job[] = [];
  const unreadable: Array<{ row: JobRow; unreadable: UnreadableRow }> = [];
  for (const row of rows.sort(byCreation)) {
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
    return { jobId: row.jobId, attempts: row.attempts, status: "error" as const, json: JSON.stringify(parsed.success ? parsed.data : response) };
  });
  let ended: Set<string>;
  try {
    ended = new Set(await applyRows(db, finish));
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
