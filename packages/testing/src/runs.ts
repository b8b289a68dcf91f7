import type { Job, ResponseIX } from "@ix/contracts";
import { type Executor, jobs, lifecycle } from "@ix/store";

/**
 * The response a worker stores for a run of `job` (`lifecycle.buildResponse`):
 * a result with no fields, or the error `error` when one is given. The run is
 * the job's next (`attempts + 1`) and takes no time.
 */
export function runResponse(
  job: Pick<Job, "client_id" | "request_id" | "ix_id" | "attempts"> & { request: Pick<Job["request"], "use_case"> },
  error: string | null = null,
): ResponseIX {
  const now = new Date();
  return lifecycle.buildResponse(job, {
    pipeline: job.request.use_case,
    error,
    result: error === null ? { fields: {} } : null,
    startedAt: now,
    finishedAt: now,
    durationMs: 0,
    attempt: job.attempts + 1,
  });
}

/**
 * Ends a claimed (running) job as its worker would, through `jobs.completeMany`
 * behind the run's fence: `done`, or `error` when `error` is given. Throws when
 * the run is no longer the job's (not running, or re-claimed since).
 */
export async function finishRun(db: Executor, job: Job, error: string | null = null): Promise<void> {
  const [completed] = await jobs.completeMany(db, [{ jobId: job.job_id, attempts: job.attempts, response: runResponse(job, error) }]);
  if (completed === undefined) throw new Error(`job ${job.job_id} was not running as attempt ${job.attempts + 1}: nothing finished`);
}
