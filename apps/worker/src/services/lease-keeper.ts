import { type Database, jobs, lifecycle } from "@ix/store";
import type { Logger } from "pino";
import type { WorkerConfig } from "../config";
import { logDbError } from "../db-retry";

export interface LeaseKeeper {
  /** Renews every third of the lease from now on, and refreshes the worker's registration with each renewal. */
  start(): void;
  stop(): void;
  /** One renewal of every held run's lease, in one statement; acts on what it learns. */
  runOnce(options?: { now?: Date }): Promise<jobs.RenewLeasesResult>;
}

export interface LeaseKeeperOptions {
  db: Database;
  config: Pick<WorkerConfig, "leaseSeconds">;
  log: Logger;
  /** The runs this worker holds now. */
  held(): jobs.HeldRun[];
  /** Runs no longer this worker's (rescued, re-claimed, ended): stop them, drop their results. */
  onLost(jobIds: string[]): void;
  /** Runs whose cancel was requested: the fallback for a NOTIFY on the cancel channel that never arrived. */
  onCancelRequested(jobIds: string[]): void;
  /** Refreshes this worker's row in the registry (its last_seen_at); called on every tick, whether or not it holds runs. */
  refreshRegistration(): Promise<void>;
}

/**
 * Keeps this worker's runs leased: every third of IX_LEASE_SECONDS
 * (`lifecycle.leaseRenewalIntervalSeconds`) it renews them all in one fenced
 * statement, so two renewals in a row may fail before a live run is rescued.
 * The same tick keeps the worker's registry row fresh; either step failing is
 * logged and tried again on the next tick, and never stops the other.
 */
export function createLeaseKeeper({ db, config, log, held, onLost, onCancelRequested, refreshRegistration }: LeaseKeeperOptions): LeaseKeeper {
  let timer: NodeJS.Timeout | undefined;
  let renewing: Promise<unknown> | null = null;
  let refreshing: Promise<unknown> | null = null;

  async function runOnce({ now }: { now?: Date } = {}): Promise<jobs.RenewLeasesResult> {
    const runs = held();
    if (runs.length === 0) return { renewed: [], cancelRequested: [], lost: [] };
    const result = await jobs.renewLeases(db, { runs, leaseSeconds: config.leaseSeconds, ...(now ? { now } : {}) });
    if (result.lost.length > 0) {
      log.warn({ jobIds: result.lost }, "leases lost (the jobs were rescued or ended elsewhere); stopping their runs");
      onLost(result.lost);
    }
    if (result.cancelRequested.length > 0) onCancelRequested(result.cancelRequested);
    return result;
  }

  function tick(): void {
    // A step slower than the interval is not overlapped by the next one, and never holds back the other.
    if (renewing === null) {
      renewing = runOnce()
        .catch((error: unknown) => logDbError(log, error, "renewing leases"))
        .finally(() => {
          renewing = null;
        });
    }
    if (refreshing === null) {
      refreshing = refreshRegistration()
        .catch((error: unknown) => logDbError(log, error, "refreshing the worker's registration"))
        .finally(() => {
          refreshing = null;
        });
    }
  }

  return {
    start() {
      if (timer) return;
      timer = setInterval(tick, lifecycle.leaseRenewalIntervalSeconds(config.leaseSeconds) * 1000);
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
    runOnce,
  };
}
