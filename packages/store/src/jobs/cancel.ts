import type { Job } from "@ix/contracts";
import { and, eq, getTableColumns, sql } from "drizzle-orm";
import { z } from "zod";
import type { Executor } from "../db.ts";
import { type CancelRequester, cancelledResponse } from "../lifecycle.ts";
import { ixJobs } from "../schema.ts";
import { clock, readJobRow, toJob } from "./row.ts";

/**
 * LISTEN on this channel to hear that a running job's cancel was requested;
 * the payload is its job_id. A notification can be lost (the listener was
 * reconnecting), so `renewLeases` reports pending cancels as well.
 */
export const CANCEL_CHANNEL = "ix_jobs_cancel";

export interface CancelParams {
  jobId: string;
  /** When given, only this client's job can be cancelled; another client's is `not_found`, as on a read. */
  clientId?: string;
  /** Who asks: the response of the cancelled job says so. */
  by: CancelRequester;
  now?: Date;
}

export type CancelResult =
  /** It was pending: it is now `cancelled`, its callback (if any) due. */
  | { outcome: "cancelled"; job: Job }
  /**
   * It is running: `cancel_requested_at` is set (the first request's time is
   * kept when asked again) and its worker is told on CANCEL_CHANNEL; the
   * worker stops the run and stores it `cancelled`.
   */
  | { outcome: "requested"; job: Job }
  /** It had already ended (done, error or cancelled); nothing changed. */
  | { outcome: "terminal"; job: Job }
  | { outcome: "not_found" };

const Uuid = z.uuid();

/**
 * Cancels a job. The row is locked first, so a cancel and a concurrent claim,
 * completion, rescue or second cancel are serialised on it: a claim skips the
 * locked row, and anything that changed it first is seen (a completion that
 * committed first makes this `terminal`; a rescue that requeued it first makes
 * it `cancelled` at once). Within a transaction of the caller it runs in a savepoint.
 */
export async function cancel(db: Executor, { jobId, clientId, by, now }: CancelParams): Promise<CancelResult> {
  // A malformed id cannot name a job; answering not_found keeps bad input from becoming a SQL error.
  if (!Uuid.safeParse(jobId).success) return { outcome: "not_found" };
  const at = clock(now);
  return db.transaction(async (tx) => {
    const [row] = await tx
      .select({ ...getTableColumns(ixJobs), now: sql<Date>`${at}`.mapWith(ixJobs.createdAt) })
      .from(ixJobs)
      .where(and(eq(ixJobs.jobId, jobId), clientId === undefined ? undefined : eq(ixJobs.clientId, clientId)))
      .for("update");
    if (!row) return { outcome: "not_found" };
    const { now: current, ...stored } = row;
    // A row that is not a valid Job is not served by reads either.
    const read = readJobRow(stored);
    if (!read.ok) return { outcome: "not_found" };
    const job = read.job;

    if (job.status === "pending") {
      const response = cancelledResponse(job, { by, now: current });
      const [cancelled] = await tx
        .update(ixJobs)
        .set({
          status: "cancelled",
          response,
          finishedAt: at,
          cancelRequestedAt: at,
          cancelRequestedBy: by,
          callbackNextAttemptAt: sql`case when ${ixJobs.callbackUrl} is not null then ${at} end`,
        })
        .where(and(eq(ixJobs.jobId, jobId), eq(ixJobs.status, "pending")))
        .returning();
      if (!cancelled) throw new Error(`pending job ${jobId} changed under its row lock`);
      return { outcome: "cancelled", job: toJob(cancelled) };
    }
    if (job.status === "running") {
      const [requested] = await tx
        .update(ixJobs)
        .set({
          cancelRequestedAt: sql`coalesce(${ixJobs.cancelRequestedAt}, ${at})`,
          cancelRequestedBy: sql`coalesce(${ixJobs.cancelRequestedBy}, ${by})`,
        })
        .where(and(eq(ixJobs.jobId, jobId), eq(ixJobs.status, "running")))
        // Sent when this transaction commits, so the worker never hears of a request it cannot see.
        .returning({ ...getTableColumns(ixJobs), notified: sql`pg_notify(${CANCEL_CHANNEL}, ${ixJobs.jobId}::text)` });
      if (!requested) throw new Error(`running job ${jobId} changed under its row lock`);
      const { notified: _, ...updated } = requested;
      return { outcome: "requested", job: toJob(updated) };
    }
    return { outcome: "terminal", job };
  });
}
