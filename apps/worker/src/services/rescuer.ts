import { type Database, jobs, lifecycle } from "@ix/store";
import type { Logger } from "pino";
import type { WorkerConfig } from "../config.ts";
import { logDbError } from "../db-retry.ts";
import type { WorkerMetrics } from "../metrics.ts";

/** What one pass did (`jobs.RescueResult`): requeued, failed (out of attempts), cancelled (a cancel was requested), or skipped (another rescuer was at it). */
export type Rescue = jobs.RescueResult;

export interface Rescuer {
  /** Rescues once now, then every interval; resolves after the first pass (a failed pass is logged, not thrown). */
  start(): Promise<void>;
  stop(): void;
  /** One pass over the orphaned running jobs. */
  runOnce(options?: { now?: Date }): Promise<Rescue>;
}

export interface RescuerOptions {
  db: Database;
  config: Pick<WorkerConfig, "pipelineTimeoutSeconds" | "maxAttempts" | "sweepIntervalSeconds">;
  log: Logger;
  /** The retry policy's maxAttempts of a use case's pipeline, if it has one (before IX_MAX_ATTEMPTS). */
  policyMaxAttempts?: (useCase: string) => number | undefined;
  /** Jobs went back to `pending`. */
  onRequeued(): void;
  /** Jobs ended `error` or `cancelled`: those with a callback_url have deliveries due. */
  onFailed(): void;
  /** Counts the orphans taken back (ix_jobs_orphaned_total). */
  metrics: WorkerMetrics;
}

/**
 * Recovers jobs whose worker died or froze: a `running` row whose lease ran
 * out (or older than the orphan horizon) goes back to `pending`, or ends
 * `error` once out of attempts, `cancelled` if its cancel was requested. Any
 * worker's rescuer may take any worker's orphans; one acts at a time (the
 * store's advisory lock), the others skip that pass.
 */
export function createRescuer({ db, config, log, policyMaxAttempts, onRequeued, onFailed, metrics }: RescuerOptions): Rescuer {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function runOnce({ now }: { now?: Date } = {}): Promise<Rescue> {
    const rescued = await jobs.rescueOrphans(db, {
      horizonSeconds: lifecycle.orphanHorizonSeconds(config.pipelineTimeoutSeconds),
      maxAttempts: config.maxAttempts,
      ...(policyMaxAttempts ? { policyMaxAttempts } : {}),
      ...(now ? { now } : {}),
    });
    // Another worker's rescuer holds the rescue lock this pass: it does the work, this one waits for its next interval.
    if (rescued.skipped) {
      log.debug("rescue skipped: another worker's rescuer is at it");
      return rescued;
    }
    if (rescued.requeued.length > 0 || rescued.failed.length > 0 || rescued.cancelled.length > 0) log.warn(rescued, "rescued orphaned jobs");
    metrics.jobsOrphaned({ requeued: rescued.requeued.length, failed: rescued.failed.length, cancelled: rescued.cancelled.length });
    if (rescued.requeued.length > 0) onRequeued();
    if (rescued.failed.length > 0 || rescued.cancelled.length > 0) onFailed();
    return rescued;
  }

  async function runLogged(): Promise<void> {
    try {
      await runOnce();
    } catch (error) {
      logDbError(log, error, "rescuing orphaned jobs");
    }
  }

  return {
    async start() {
      await runLogged();
      if (!stopped) timer = setInterval(() => void runLogged(), config.sweepIntervalSeconds * 1000);
    },
    stop() {
      stopped = true;
      clearInterval(timer);
    },
    runOnce,
  };
}
