import { setTimeout as sleep } from "node:timers/promises";
import type { Database } from "@ix/store";
import { definePipeline, RetryableError } from "@ix/worker";
import { z } from "zod";
import { recordRunEnd, recordRunStart } from "./runs.ts";

const Nap = z.strictObject({
  /** How long the run takes. */
  ms: z.number().int().min(0).max(60_000),
  /** How long the first run (attempt 0) takes instead: a run that is frozen or killed can be made to last. */
  first_ms: z.number().int().min(0).max(60_000).optional(),
  /** Runs (attempts 0 … n − 1) that throw a RetryableError at their end instead of returning (`recorded` only). */
  retryable_failures: z.number().int().min(0).max(100).optional(),
});

/** `nap`: sleeps `options.ms`, honouring its signal, and says which process ran it. */
export const nap = definePipeline({
  name: "nap",
  input: Nap,
  async run(request, { signal }) {
    await sleep(request.options.ms, undefined, { signal });
    return { pid: process.pid };
  },
});

/**
 * `recorded`: like `nap`, but every run is written to `fault_runs` on `runs`
 * (start, then end), and the result names the process and attempt that
 * produced it, so the stored response can be traced to exactly one run.
 */
export function recorded(runs: Database) {
  return definePipeline({
    name: "recorded",
    input: Nap,
    async run(request, { signal }) {
      const { runId, attempt } = await recordRunStart(runs, {
        clientId: request.ix_client_id,
        requestId: request.request_id,
        pid: process.pid,
      });
      const ms = attempt === 0 && request.options.first_ms !== undefined ? request.options.first_ms : request.options.ms;
      await sleep(ms, undefined, { signal });
      await recordRunEnd(runs, runId);
      if (attempt < (request.options.retryable_failures ?? 0)) throw new RetryableError(`provider busy (attempt ${attempt})`);
      return { pid: process.pid, attempt };
    },
  });
}
