import { sql } from "drizzle-orm";
import { z } from "zod";
import type { Executor } from "../db.ts";
import { assertLeaseSeconds } from "../lifecycle.ts";
import { clock } from "./row.ts";

/** A run a worker holds: the job and the `attempts` it was claimed with (the fence). */
export interface HeldRun {
  jobId: string;
  attempts: number;
}

export interface RenewLeasesParams {
  runs: readonly HeldRun[];
  /** The new lease runs from now (IX_LEASE_SECONDS). */
  leaseSeconds: number;
  now?: Date;
}

export interface RenewLeasesResult {
  /** Still this worker's runs: their leases now end `leaseSeconds` from now. */
  renewed: string[];
  /** Of those, the runs whose cancel was requested (the fallback for a lost NOTIFY on CANCEL_CHANNEL). */
  cancelRequested: string[];
  /** No longer this worker's (rescued, re-claimed, ended, pruned): their results will be fenced out; stop them. */
  lost: string[];
}

const Uuid = z.uuid();

/**
 * Renews the leases of every run a worker holds, in one statement, fenced:
 * a run renews only while its row is still `running` with the attempts it was
 * claimed with. Rows are locked in job_id order, so two renewals (or a
 * renewal and a cancel) never deadlock each other. An expired lease that the
 * rescuer has not acted on yet is renewed too: the run is still this worker's.
 */
export async function renewLeases(db: Executor, { runs, leaseSeconds, now }: RenewLeasesParams): Promise<RenewLeasesResult> {
  assertLeaseSeconds(leaseSeconds);
  for (const run of runs) {
    if (!Number.isInteger(run.attempts) || run.attempts < 0) {
      throw new RangeError(`renewLeases: attempts of job ${run.jobId} must be a non-negative integer, got ${run.attempts}`);
    }
  }
  // A malformed id names no row: it can only be lost.
  const valid = runs.filter((run) => Uuid.safeParse(run.jobId).success);
  if (valid.length === 0) return { renewed: [], cancelRequested: [], lost: runs.map((run) => run.jobId) };
  const at = clock(now);
  const result = await db.execute<{ job_id: string; cancel_requested: boolean }>(sql`
    update ix_jobs as j set lease_expires_at = ${at} + make_interval(secs => ${leaseSeconds}::float8)
    where j.job_id = any(array(
      select x.job_id from ix_jobs as x
      join unnest(${sql.param(valid.map((r) => r.jobId))}::uuid[], ${sql.param(valid.map((r) => r.attempts))}::int[]) as r(job_id, attempts)
        on x.job_id = r.job_id and x.attempts = r.attempts
      where x.status = 'running'
      order by x.job_id
      for update of x))
    returning j.job_id, j.cancel_requested_at is not null as cancel_requested`);
  const renewed = new Set(result.rows.map((row) => row.job_id));
  return {
    renewed: [...renewed],
    cancelRequested: result.rows.filter((row) => row.cancel_requested).map((row) => row.job_id),
    lost: runs.filter((run) => !renewed.has(run.jobId)).map((run) => run.jobId),
  };
}
