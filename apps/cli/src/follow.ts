import { type IxClient, IxWaitTimeoutError, type Job } from "@ix/client";
import { parseMilliseconds } from "./duration.ts";
import { EXIT } from "./exit-codes.ts";
import { UsageError } from "./usage-error.ts";

/** --timeout and --interval as the commands that take --wait declare them. */
export interface WaitFlags {
  timeout: string;
  interval: string;
}

export interface WaitTimes {
  timeoutMs: number;
  intervalMs: number;
}

/** The flags in milliseconds; a bad one is a usage error, found before anything is sent. */
export function waitTimes(flags: WaitFlags): WaitTimes {
  try {
    return { timeoutMs: parseMilliseconds(flags.timeout), intervalMs: parseMilliseconds(flags.interval) };
  } catch (error) {
    throw new UsageError(`--timeout/--interval: ${(error as Error).message}`);
  }
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * Follows a job until it ends, showing progress on stderr: a spinner on a
 * terminal, one plain line per status change otherwise (logs, CI). When
 * --timeout runs out, the last state seen is printed as the result would have
 * been (a script keeps the job_id) and IxWaitTimeoutError is rethrown.
 */
export async function follow(client: IxClient, jobId: string, times: WaitTimes): Promise<Job> {
  const tty = process.stderr.isTTY;
  const started = Date.now();
  let lastStatus = "";
  let frame = 0;
  const onPoll = (job: Job) => {
    if (tty) {
      const elapsed = ((Date.now() - started) / 1000).toFixed(1);
      process.stderr.write(`\r${SPINNER[frame++ % SPINNER.length]} ${job.job_id} ${job.status} ${elapsed}s `);
    } else if (job.status !== lastStatus) {
      process.stderr.write(`${job.job_id} ${job.status}\n`);
    }
    lastStatus = job.status;
  };
  try {
    const job = await client.wait(jobId, { ...times, onPoll });
    if (tty) process.stderr.write(`\r✔ ${job.job_id} ${job.status}${" ".repeat(12)}\n`);
    return job;
  } catch (error) {
    if (tty && lastStatus) process.stderr.write("\n");
    if (error instanceof IxWaitTimeoutError && error.job !== null) printJob(error.job);
    throw error;
  }
}

/** Prints the job as the command's result; one that ended `error` or `cancelled` makes the exit code EXIT.jobFailed. */
export function printJob(job: Job): void {
  console.log(JSON.stringify(job, null, 2));
  if (job.status === "error" || job.status === "cancelled") process.exitCode = EXIT.jobFailed;
}
