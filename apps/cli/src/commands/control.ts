import { clientFor } from "../client.ts";
import type { CliEnv } from "../env.ts";

/**
 * `ix cancel`: a pending job is cancelled at once; a running one is asked to
 * stop, and its worker stores it `cancelled` (follow it with `ix get --wait`).
 * Prints the job; an ended job is the API's 409, exit 1.
 */
export async function cancel(env: CliEnv, jobId: string): Promise<void> {
  const { status, job } = await clientFor(env).cancel(jobId);
  if (status === 202) console.error(`cancel requested: job ${job.job_id} is running; its worker stops it (ix get ${job.job_id} --wait)`);
  console.log(JSON.stringify(job, null, 2));
}

/** `ix retry`: a job that ended `error` or `cancelled` is pending again; prints it. Any other status is the API's 409, exit 1. */
export async function retry(env: CliEnv, jobId: string): Promise<void> {
  console.log(JSON.stringify(await clientFor(env).retry(jobId), null, 2));
}
