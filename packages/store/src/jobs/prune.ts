import { and, inArray, isNull, lt, sql } from "drizzle-orm";
import { TERMINAL_JOB_STATUSES } from "@ix/contracts";
import type { Executor } from "../db.ts";
import { ixJobs } from "../schema.ts";
import { clock } from "./row.ts";

/**
 * Deletes up to `batchSize` terminal jobs finished more than `olderThanSeconds`
 * ago whose callback is not still due; returns how many. Callers loop until 0,
 * so no single statement holds locks on a large part of the table.
 */
export async function pruneTerminal(
  db: Executor,
  { olderThanSeconds, batchSize, now }: { olderThanSeconds: number; batchSize: number; now?: Date },
): Promise<number> {
  const at = clock(now);
  const victims = db
    .select({ jobId: ixJobs.jobId })
    .from(ixJobs)
    .where(
      and(
        inArray(ixJobs.status, [...TERMINAL_JOB_STATUSES]),
        lt(ixJobs.finishedAt, sql`${at} - make_interval(secs => ${olderThanSeconds}::float8)`),
        isNull(ixJobs.callbackNextAttemptAt),
      ),
    )
    .limit(batchSize)
    .for("update", { skipLocked: true });
  const rows = await db.delete(ixJobs).where(inArray(ixJobs.jobId, victims)).returning({ jobId: ixJobs.jobId });
  return rows.length;
}
