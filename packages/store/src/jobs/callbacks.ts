import type { Job } from "@ix/contracts";
import { and, asc, eq, inArray, isNotNull, isNull, lte, sql } from "drizzle-orm";
import type { Executor } from "../db";
import type { CallbackOutcome } from "../lifecycle";
import { ixJobs } from "../schema";
import { clock, toJob } from "./row";

export interface CallbackDelivery {
  job: Job;
  /** 1-based number of this delivery attempt; the fence for recording its outcome. */
  attempt: number;
}

/**
 * Claims due callback deliveries with SKIP LOCKED and leases them: the next
 * attempt time moves `leaseSeconds` ahead (`lifecycle.callbackLeaseSeconds`),
 * so a worker that dies mid-POST leaves the delivery to be retried after the
 * lease instead of lost, and two workers never send the same attempt.
 */
export async function claimDueCallbacks(
  db: Executor,
  { limit, leaseSeconds, now }: { limit: number; leaseSeconds: number; now?: Date },
): Promise<CallbackDelivery[]> {
  const at = clock(now);
  const due = db
    .select({ jobId: ixJobs.jobId })
    .from(ixJobs)
    .where(and(isNotNull(ixJobs.callbackNextAttemptAt), lte(ixJobs.callbackNextAttemptAt, at), isNull(ixJobs.callbackStatus)))
    .orderBy(asc(ixJobs.callbackNextAttemptAt))
    .limit(limit)
    .for("update", { skipLocked: true });
  const rows = await db
    .update(ixJobs)
    .set({
      callbackAttempts: sql`${ixJobs.callbackAttempts} + 1`,
      callbackNextAttemptAt: sql`${at} + make_interval(secs => ${leaseSeconds}::float8)`,
    })
    .where(inArray(ixJobs.jobId, due))
    .returning();
  return rows.map((row) => ({ job: toJob(row), attempt: row.callbackAttempts }));
}

/**
 * Records the outcome of delivery attempt `attempt` (`lifecycle.decideCallbackOutcome`),
 * fenced on it: an attempt whose lease ran out and was re-claimed cannot
 * overwrite its successor.
 */
export async function recordCallbackAttempt(
  db: Executor,
  { jobId, attempt, outcome, now }: { jobId: string; attempt: number; outcome: CallbackOutcome; now?: Date },
): Promise<boolean> {
  const at = clock(now);
  const set =
    outcome.kind === "delivered"
      ? { callbackStatus: "delivered" as const, callbackNextAttemptAt: null, callbackLastError: null }
      : outcome.kind === "failed"
        ? { callbackStatus: "failed" as const, callbackNextAttemptAt: null, callbackLastError: outcome.error }
        : {
            callbackNextAttemptAt: sql`${at} + make_interval(secs => ${outcome.delaySeconds}::float8)`,
            callbackLastError: outcome.error,
          };
  const rows = await db
    .update(ixJobs)
    .set(set)
    .where(and(eq(ixJobs.jobId, jobId), eq(ixJobs.callbackAttempts, attempt), isNull(ixJobs.callbackStatus)))
    .returning({ jobId: ixJobs.jobId });
  return rows.length === 1;
}
