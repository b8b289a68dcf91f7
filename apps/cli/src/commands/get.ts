import { clientFor } from "../client.ts";
import type { CliEnv } from "../env.ts";
import { follow, printJob, type WaitFlags, waitTimes } from "../follow.ts";

/**
 * `ix get`: prints a job; with --wait, follows it until it is done, error or
 * cancelled. Exits 3 when the job ended `error` or `cancelled`, 4 when
 * --timeout ran out first (see exit-codes.ts).
 */
export async function get(env: CliEnv, jobId: string, options: WaitFlags & { wait: boolean }): Promise<void> {
  const times = options.wait ? waitTimes(options) : null;
  const client = clientFor(env);
  printJob(times === null ? await client.get(jobId) : await follow(client, jobId, times));
}
