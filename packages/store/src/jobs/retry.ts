import type { Job } from "@ix/contracts";
import { and, eq, getTableColumns, inArray, type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import type { Executor } from "../db.ts";
import { decideManualRetry } from "../lifecycle.ts";
import { ixJobs } from "../schema.ts";
import { PENDING_CHANNEL } from "./insert.ts";
import { clock, readJobRow, toJob } from "./row.ts";

export interface RetryParams {
  jobId: string;
  /** When given, only this client's job can be retried; another client's is `not_found`, as on a read. */
  clientId?: string;
  now?: Date;
}

export type RetryResult =
  /** It ended `error` or `cancelled`: it is `pending` again, due now. */
  | { outcome: "retried"; job: Job }
  /** Its status does not allow a manual retry (pending, running or done); nothing changed. */
  | { outcome: "not_retryable"; job: Job }
  | { outcome: "not_found" };

const Uuid = z.uuid();

/** Only a job that ended without a result can be retried by hand. */
export const RETRYABLE_STATUSES = ["error", "cancelled"] as const;

/**
 * What a manual retry sets besides attempts and max_attempts (`lifecycle.decideManualRetry`), for one job
 * here and for many in `retry-failed.ts`: pending, due at `at`, run times and response cleared, callback
 * state reset so the next ending is delivered again.
 */
export function manualRetryReset(at: SQL) {
  return {
    status: "pending" as const,
    runAt: at,
    startedAt: null,
    finishedAt: null,
    response: null,
    cancelRequestedAt: null,
    cancelRequestedBy: null,
    callbackStatus: null,
    callbackAttempts: 0,
    callbackNextAttemptAt: null,
    callbackLastError: null,
  };
}

/**
 * A manual retry: a job that ended `error` or `cancelled` goes back to
 * `pending`, same job_id, due now, with attempts and max_attempts as
 * `lifecycle.decideManualRetry` says (errors kept, one more run allowed). Its
 * response and run times are cleared, and its callback state is reset, so the
 * next ending is delivered again; a delivery of the old ending still in flight
 * is fenced out by the reset attempt count. Workers are woken as by a
 * submission. The row is locked first, so two retries at once retry once.
 */
export async function retry(db: Executor, { jobId, clientId, now }: RetryParams): Promise<RetryResult> {
  if (!Uuid.safeParse(jobId).success) return { outcome: "not_found" };
  const at = clock(now);
  return db.transaction(async (tx) => {
    const [row] = await tx
      .select()
      .from(ixJobs)
      .where(and(eq(ixJobs.jobId, jobId), clientId === undefined ? undefined : eq(ixJobs.clientId, clientId)))
      .for("update");
    if (!row) return { outcome: "not_found" };
    const read = readJobRow(row);
    if (!read.ok) return { outcome: "not_found" };
    const job = read.job;
    if (job.status !== "error" && job.status !== "cancelled") return { outcome: "not_retryable", job };

    const { attempts, maxAttempts } = decideManualRetry(job);
    const [retried] = await tx
      .update(ixJobs)
      .set({ ...manualRetryReset(at), attempts, maxAttempts })
      .where(and(eq(ixJobs.jobId, jobId), inArray(ixJobs.status, [...RETRYABLE_STATUSES])))
      .returning({ ...getTableColumns(ixJobs), notified: sql`pg_notify(${PENDING_CHANNEL}, '')` });
    if (!retried) throw new Error(`job ${jobId} changed under its row lock`);
    const { notified: _, ...updated } = retried;
    return { outcome: "retried", job: toJob(updated) };
  });
}
