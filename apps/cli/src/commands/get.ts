import { isTerminal, type Job } from "@ix/contracts";
import { setTimeout as delay } from "node:timers/promises";
import { apiClient } from "../api-client.ts";
import { parseDuration } from "../duration.ts";
import type { CliEnv } from "../env.ts";
import { UsageError } from "../usage-error.ts";

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * Prints a job; with --wait, follows it to a terminal state (done, error or
 * cancelled): a spinner on a terminal, one plain line per status change
 * otherwise (logs, CI). Exits 1 when the job ended `error` or `cancelled`
 * (it produced no result), so scripts can tell.
 */
export async function get(env: CliEnv, jobId: string, options: { wait: boolean; timeout: string; interval: string }): Promise<void> {
  const client = apiClient(env);
  let job = await client.get(jobId);
  if (options.wait) {
    let timeoutSeconds: number;
    let intervalSeconds: number;
    try {
      timeoutSeconds = parseDuration(options.timeout);
      intervalSeconds = options.interval.endsWith("ms") ? Number(options.interval.slice(0, -2)) / 1000 : parseDuration(options.interval);
      if (!(intervalSeconds > 0)) throw new Error(`"${options.interval}" must be positive`);
    } catch (error) {
      throw new UsageError(`--timeout/--interval: ${(error as Error).message}`);
    }
    job = await follow(client, job, timeoutSeconds * 1000, intervalSeconds * 1000);
  }
  console.log(JSON.stringify(job, null, 2));
  if (job.status === "error" || job.status === "cancelled") process.exitCode = 1;
}

async function follow(
  client: ReturnType<typeof apiClient>,
  first: Job,
  timeoutMs: number,
  intervalMs: number,
): Promise<Job> {
  const tty = process.stderr.isTTY;
  const started = Date.now();
  let job = first;
  let lastStatus = "";
  let frame = 0;
  while (!isTerminal(job.status)) {
    const elapsed = ((Date.now() - started) / 1000).toFixed(1);
    if (tty) {
      process.stderr.write(`\r${SPINNER[frame++ % SPINNER.length]} ${job.job_id} ${job.status} ${elapsed}s `);
    } else if (job.status !== lastStatus) {
      process.stderr.write(`${job.job_id} ${job.status}\n`);
    }
    lastStatus = job.status;
    if (Date.now() - started > timeoutMs) {
      if (tty) process.stderr.write("\n");
      throw new Error(`job ${job.job_id} still ${job.status} after ${timeoutMs / 1000}s`);
    }
    await delay(intervalMs);
    job = await client.get(job.job_id);
  }
  if (tty) process.stderr.write(`\r✔ ${job.job_id} ${job.status}${" ".repeat(12)}\n`);
  else process.stderr.write(`${job.job_id} ${job.status}\n`);
  return job;
}
