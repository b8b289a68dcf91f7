import { isTerminal, type Job } from "@ix/contracts";
import { IxNetworkError, IxProblemError, IxWaitTimeoutError } from "./errors.ts";
import type { CallOptions } from "./http.ts";

export interface WaitOptions extends CallOptions {
  /** Give up after this long, with IxWaitTimeoutError. Default 10 minutes. */
  timeoutMs?: number;
  /** Pause between two reads of the job. Default 500 ms. */
  intervalMs?: number;
  /** Called with every state read, the last (terminal) one included: progress output, logs. */
  onPoll?: (job: Job) => void;
}

export const DEFAULT_WAIT_TIMEOUT_MS = 600_000;
export const DEFAULT_WAIT_INTERVAL_MS = 500;

/**
 * Answers worth reading again: the API was unreachable, too slow, or said it
 * is briefly unavailable (a restart, the database failing over). Anything
 * else (404, 401) will not change by waiting.
 */
function transient(error: unknown): boolean {
  return error instanceof IxNetworkError || (error instanceof IxProblemError && [502, 503, 504].includes(error.status));
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Reads the job until it is terminal (done, error or cancelled) and returns
 * it. Once the job has been read, transient failures are read through until
 * the deadline; a first read that fails throws at once (a wrong URL should
 * not look like a long wait). The deadline bounds a read in flight too. The
 * caller's abort rejects with its reason.
 */
export async function waitForJob(
  get: (jobId: string, options: CallOptions) => Promise<Job>,
  jobId: string,
  { timeoutMs = DEFAULT_WAIT_TIMEOUT_MS, intervalMs = DEFAULT_WAIT_INTERVAL_MS, onPoll, signal }: WaitOptions = {},
): Promise<Job> {
  if (!(timeoutMs > 0)) throw new TypeError(`timeoutMs must be positive, got ${timeoutMs}`);
  if (!(intervalMs > 0)) throw new TypeError(`intervalMs must be positive, got ${intervalMs}`);
  const deadline = AbortSignal.timeout(timeoutMs);
  const stop = signal ? AbortSignal.any([signal, deadline]) : deadline;
  let job: Job | null = null;
  let lastFailure: unknown;
  const gaveUp = (): Error => {
    if (signal?.aborted) return signal.reason as Error;
    return new IxWaitTimeoutError(jobId, timeoutMs, job, lastFailure === undefined ? undefined : { cause: lastFailure });
  };
  for (;;) {
    try {
      job = await get(jobId, { signal: stop });
      lastFailure = undefined;
      onPoll?.(job);
      if (isTerminal(job.status)) return job;
    } catch (error) {
      if (stop.aborted) throw gaveUp();
      if (job === null || !transient(error)) throw error;
      lastFailure = error;
    }
    try {
      await sleep(intervalMs, stop);
    } catch {
      throw gaveUp();
    }
  }
}
