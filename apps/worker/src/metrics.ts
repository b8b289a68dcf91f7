import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * What a worker process sees and only it can count (docs/OPERATIONS.md,
 * "Metrics"): its runs' outcomes, wait and run times, claim and completion
 * latency, its slots, its pipeline threads and its callback deliveries.
 * Served on IX_WORKER_METRICS_PORT (metrics-server.ts); the API serves what
 * the database says. Labels are use_case and outcomes only, never a job,
 * request or client: series stay few whatever the traffic.
 */
export interface WorkerMetrics {
  readonly registry: Registry;
  /** A claimed job waited this long between becoming due (run_at) and its claim (started_at), both the database's clock. */
  jobClaimed(useCase: string, waitSeconds: number): void;
  /** A run's completion was stored; `status` is what the job became ("pending": a retry). */
  jobFinished(useCase: string, status: "pending" | "done" | "error" | "cancelled", runSeconds: number): void;
  /** The rescuer took back orphaned runs, decided as each says. */
  jobsOrphaned(counts: { requeued: number; failed: number; cancelled: number }): void;
  /** One claim statement's round trip. */
  claimed(seconds: number): void;
  /** One completion statement's round trip (it stores a tick's completions together). */
  completionsStored(seconds: number): void;
  /** A pipeline thread was terminated (a run ignored its abort) or crashed; the pool replaces it. */
  threadRestarted(reason: "terminated" | "crashed"): void;
  /** One callback delivery attempt and what the lifecycle made of it. */
  callbackDelivered(outcome: "delivered" | "retry" | "failed", seconds: number): void;
  /** Reads the slot gauges from the runner when scraped. */
  observeSlots(read: () => { busy: number; total: number; inFlight: number }): void;
}

/** Seconds waiting for a claim and running a pipeline: from a few milliseconds to an hour. */
const JOB_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** Seconds of one statement or one callback POST. */
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The run outcomes, named as operators say them: a run that ends pending again was retried. */
const OUTCOME = { pending: "retried", done: "done", error: "error", cancelled: "cancelled" } as const;

export function createWorkerMetrics(): WorkerMetrics {
  const registry = new Registry();
  // CPU, memory, GC and event-loop delay (monitorEventLoopDelay), under the names Node dashboards expect.
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const waits = new Histogram({
    name: "ix_job_wait_seconds",
    help: "From when a job became due (run_at) to its claim, by use_case",
    labelNames: ["use_case"] as const,
    buckets: JOB_BUCKETS,
    registers,
  });
  const runs = new Histogram({
    name: "ix_job_run_seconds",
    help: "How long a pipeline run took, by use_case (runs whose completion was stored)",
    labelNames: ["use_case"] as const,
    buckets: JOB_BUCKETS,
    registers,
  });
  const outcomes = new Counter({
    name: "ix_job_outcomes_total",
    help: "Runs whose completion this worker stored, by use_case and outcome (done, error, cancelled, retried)",
    labelNames: ["use_case", "outcome"] as const,
    registers,
  });
  const orphans = new Counter({
    name: "ix_jobs_orphaned_total",
    help: "Orphaned runs this worker's rescuer took back, by what became of the job (requeued, failed, cancelled)",
    labelNames: ["decision"] as const,
    registers,
  });
  const claims = new Histogram({
    name: "ix_worker_claim_seconds",
    help: "Round trip of one claim statement",
    buckets: CALL_BUCKETS,
    registers,
  });
  const completions = new Histogram({
    name: "ix_worker_completion_seconds",
    help: "Round trip of one completion statement (a tick's completions stored together)",
    buckets: CALL_BUCKETS,
    registers,
  });
  const restarts = new Counter({
    name: "ix_worker_pipeline_thread_restarts_total",
    help: "Pipeline threads replaced: terminated after ignoring an abort, or crashed",
    labelNames: ["reason"] as const,
    registers,
  });
  const deliveries = new Counter({
    name: "ix_callback_deliveries_total",
    help: "Callback delivery attempts, by outcome (delivered, retry: failed and scheduled again, failed: given up)",
    labelNames: ["outcome"] as const,
    registers,
  });
  const deliveryTimes = new Histogram({
    name: "ix_callback_delivery_seconds",
    help: "Duration of one callback POST, to its answer or failure",
    buckets: CALL_BUCKETS,
    registers,
  });

  let slots: () => { busy: number; total: number; inFlight: number } = () => ({ busy: 0, total: 0, inFlight: 0 });
  new Gauge({
    name: "ix_worker_slots",
    help: "Pipeline slots of this worker (IX_WORKER_CONCURRENCY)",
    registers,
    collect() {
      this.set(slots().total);
    },
  });
  new Gauge({
    name: "ix_worker_slots_busy",
    help: "Pipeline slots running a pipeline now",
    registers,
    collect() {
      this.set(slots().busy);
    },
  });
  new Gauge({
    name: "ix_worker_jobs_in_flight",
    help: "Jobs claimed and not yet stored, prefetched ones included",
    registers,
    collect() {
      this.set(slots().inFlight);
    },
  });

  return {
    registry,
    jobClaimed: (useCase, waitSeconds) => waits.observe({ use_case: useCase }, Math.max(0, waitSeconds)),
    jobFinished(useCase, status, runSeconds) {
      outcomes.inc({ use_case: useCase, outcome: OUTCOME[status] });
      runs.observe({ use_case: useCase }, runSeconds);
    },
    jobsOrphaned(counts) {
      for (const decision of ["requeued", "failed", "cancelled"] as const) {
        if (counts[decision] > 0) orphans.inc({ decision }, counts[decision]);
      }
    },
    claimed: (seconds) => claims.observe(seconds),
    completionsStored: (seconds) => completions.observe(seconds),
    threadRestarted: (reason) => restarts.inc({ reason }),
    callbackDelivered(outcome, seconds) {
      deliveries.inc({ outcome });
      deliveryTimes.observe(seconds);
    },
    observeSlots(read) {
      slots = read;
    },
  };
}
