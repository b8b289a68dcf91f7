import type { Job, ResponseIX, TraceContext } from "@ix/contracts";
import { type Completion, type Database, isTransientDbError, jobs, lifecycle, logText } from "@ix/store";
import type { Logger } from "pino";
import { createClaimLoop } from "../claim-loop.ts";
import type { WorkerConfig } from "../config.ts";
import { logDbError, retryWhileDbAway } from "../db-retry.ts";
import type { WorkerMetrics } from "../metrics.ts";
import type { PipelineRegistry } from "../pipeline.ts";
import { type RunVerdict, startPipeline } from "../pipeline-run.ts";
import type { PipelineThreads } from "../pipeline-threads.ts";
import { type RunSpan, startRunSpan } from "../tracing.ts";

export interface JobRunner {
  /** Begins claiming: from now on the claim loop runs whenever it is woken and slots are free. */
  start(): void;
  /** Jobs may be waiting (a NOTIFY, the poll, a rescue). */
  wake(): void;
  /** One claim of up to the free slots; resolves when those jobs are finished and stored. Returns how many were claimed. */
  runOnce(): Promise<number>;
  /** Stops claiming; the jobs in flight carry on. */
  stop(): void;
  /** Resolves when the jobs in flight now are finished and stored. */
  settled(): Promise<void>;
  /**
   * The grace period is over: cuts off running pipelines, leaves queued jobs
   * unstarted and gives up storing, so every job in flight stays `running` for
   * the rescuer. Returns how many jobs that abandoned.
   */
  abandon(): number;
  /** The runs this worker holds (claimed, not yet stored), with the attempts they were claimed with: the leases to renew. */
  heldRuns(): jobs.HeldRun[];
  /**
   * Their cancel was requested: a queued job ends `cancelled` without running;
   * a running one has its signal aborted and is killed after
   * IX_CANCEL_GRACE_SECONDS, and its completion is stored (the store ends it `cancelled`).
   */
  cancelRuns(jobIds: Iterable<string>): void;
  /**
   * No longer this worker's (its lease was lost: rescued, re-claimed, ended):
   * the run is stopped like a cancelled one and its result is dropped unstored.
   */
  loseRuns(jobIds: Iterable<string>): void;
  /** Jobs claimed and not yet stored. */
  readonly inFlight: number;
  /** Pipeline runs that have not stopped yet, including runs past their timeout whose job is already stored. */
  readonly runningPipelines: number;
}

export interface JobRunnerOptions {
  db: Database;
  registry: PipelineRegistry;
  /** Where thread-capable pipelines run; null runs every pipeline inline. */
  threads: PipelineThreads | null;
  config: Pick<
    WorkerConfig,
    | "concurrency"
    | "prefetch"
    | "pipelineTimeoutSeconds"
    | "killGraceSeconds"
    | "maxResultBytes"
    | "leaseSeconds"
    | "maxAttempts"
    | "retryBaseSeconds"
    | "retryMaxSeconds"
    | "cancelGraceSeconds"
    | "useCaseConcurrency"
  >;
  /** The use_cases it claims (use-cases.ts `servedUseCases`): jobs of any other use_case are left to other workers. */
  useCases: readonly string[];
  log: Logger;
  /** Finished jobs with a callback_url were stored: their deliveries are due. */
  onCallbacksDue(): void;
  /** Outcomes, wait and run times, claim and completion latency (docs/OPERATIONS.md, "Metrics"). */
  metrics: WorkerMetrics;
}

/**
 * Claims pending jobs in batches up to its free slots (running, queued and
 * not-yet-stored jobs all count), runs each through its pipeline, and stores
 * the responses of one tick in one fenced statement.
 */
export function createJobRunner({ db, registry, threads, config, useCases, log, onCallbacksDue, metrics }: JobRunnerOptions): JobRunner {
  /**
   * Claimed jobs not yet stored: `abort` is the hard stop `abandon` fires;
   * `stop` stops the run for a cancel or a lost lease, and `lost` drops its result.
   */
  const active = new Map<string, Active>();
  interface Active {
    job: Job;
    done: Promise<void>;
    abort: AbortController;
    stop: AbortController;
    cancelRequested: boolean;
    lost: boolean;
  }
  /** Slots promised to claims in progress, so concurrent claims never exceed the free slots. */
  let reserved = 0;
  let started = false;
  let stopping = false;
  /** Ends the claim loop's retry waits on stop. */
  const stopClaiming = new AbortController();
  /** Ends store retries when the grace period is over. */
  const hardStop = new AbortController();

  // ---- completions, batched: every completion of one tick goes in one statement ----

  type Pending = { completion: Completion; job: Job; resolve(status: jobs.CompletedRun["status"] | null): void };
  let buffer: Pending[] = [];
  let flushing: Promise<void> | null = null;

  /** Queues a completion for this tick's statement; resolves with what became of the job, or null when fenced out. */
  function complete(job: Job, response: ResponseIX, outcome: lifecycle.RunOutcome): Promise<jobs.CompletedRun["status"] | null> {
    return new Promise((resolve) => {
      buffer.push({ completion: { jobId: job.job_id, attempts: job.attempts, response, outcome }, job, resolve });
      if (!flushing) flushing = new Promise<void>((r) => setImmediate(r)).then(flush);
    });
  }

  async function flush(): Promise<void> {
    // Whatever happens, the next completion schedules a flush again: a flush left marked as running would
    // leave every later completion in the buffer, unstored.
    try {
      while (buffer.length > 0) {
        const batch = buffer;
        buffer = [];
        const applied = await storeCompletions(batch.map((p) => p.completion));
        let callbacks = false;
        for (const p of batch) {
          const status = applied.get(p.completion.jobId) ?? null;
          // A retried job (pending again) has no callback yet: only its last run's end is delivered.
          if (status !== null && status !== "pending" && p.job.callback_url !== null) callbacks = true;
          p.resolve(status);
        }
        if (callbacks) wakeCallbacks();
      }
    } finally {
      flushing = null;
    }
  }

  function wakeCallbacks(): void {
    try {
      onCallbacksDue();
    } catch (error) {
      log.error({ err: error }, "waking the callback dispatcher failed; it finds the due callbacks when it next polls");
    }
  }

  /** Stores completions, retried while the database is away; gives up only at a hard stop (the rescuer then recovers the jobs). */
  async function storeCompletions(completions: Completion[]): Promise<Map<string, jobs.CompletedRun["status"]>> {
    try {
      const onUnstorable = (f: jobs.UnstorableCompletion) =>
        log.warn({ job_id: f.jobId, reason: f.reason, stored_as_error: f.storedAsError }, "response could not be stored as the pipeline made it");
      const applied = await retryWhileDbAway(async () => {
        const began = performance.now();
        const stored = await jobs.completeRuns(db, completions, { onUnstorable });
        metrics.completionsStored((performance.now() - began) / 1000);
        return stored;
      }, {
        signal: hardStop.signal,
        retryable: isTransientDbError,
        onFailure: (error, retryInMs) => logDbError(log, error, "storing responses", retryInMs),
      });
      return new Map(applied.map((run) => [run.jobId, run.status]));
    } catch (error) {
      log.error({ err: error, jobIds: completions.map((c) => c.jobId) }, "storing responses failed; the jobs stay running for the rescuer");
      return new Map();
    }
  }

  // ---- pipeline slots ----

  // Pipelines run at most `concurrency` at once; claimed jobs beyond that
  // (prefetch) wait here for a slot. A slot frees when the run has really
  // stopped (returned, or its thread was terminated), not when its response is
  // stored: storing never idles a slot, and a run past its timeout still holds
  // one, so real concurrency never exceeds the setting.
  let runningPipelines = 0;
  /** Runs still going although their job's response is given (past the timeout, within the kill grace). */
  let lingering = 0;
  const slotWaiters: Array<() => void> = [];

  function acquirePipelineSlot(): Promise<void> {
    if (runningPipelines < config.concurrency) {
      runningPipelines++;
      return Promise.resolve();
    }
    return new Promise((resolve) => slotWaiters.push(resolve));
  }

  function releasePipelineSlot(): void {
    const next = slotWaiters.shift();
    if (next) next();
    else runningPipelines--;
  }

  // ---- jobs ----

  /** How a run ends, by the lifecycle's rule, with the pipeline's retry policy over the worker's defaults. */
  function decide(entry: Active, verdict: RunVerdict): lifecycle.RunOutcome {
    const { job } = entry;
    const policy = registry.retryPolicy(job.request.use_case);
    return lifecycle.decideRunOutcome(
      { failed: verdict.response.error !== null, retryable: verdict.retryable, retryAfterSeconds: verdict.retryAfterSeconds },
      {
        attempts: job.attempts,
        maxAttempts: lifecycle.effectiveMaxAttempts(job.max_attempts, policy?.maxAttempts, config.maxAttempts),
        cancelRequested: entry.cancelRequested,
      },
      { backoff: { baseSeconds: policy?.baseSeconds ?? config.retryBaseSeconds, maxSeconds: policy?.maxSeconds ?? config.retryMaxSeconds } },
    );
  }

  /** Records a stored completion in the metrics, and ends the run's span with what became of the job. */
  function finished(job: Job, span: RunSpan, response: ResponseIX, status: jobs.CompletedRun["status"] | null): void {
    if (status === null) {
      span.end("fenced");
      return;
    }
    metrics.jobFinished(job.request.use_case, status, response.metadata.duration_ms / 1000);
    span.end(status === "pending" ? "retried" : status, response.error);
  }

  function startJob(job: Job, trace: TraceContext | null): Promise<void> {
    const abort = new AbortController();
    const stop = new AbortController();
    const entry: Active = { job, done: Promise.resolve(), abort, stop, cancelRequested: job.cancel_requested_at !== null, lost: false };
    const jobLog = log.child({ job_id: job.job_id, use_case: job.request.use_case, attempt: job.attempts + 1 });
    // Out here so the `.catch` below can end it: a span never ended is never exported.
    let span: RunSpan | null = null;
    const done = (async () => {
      await acquirePipelineSlot();
      // Abandoned while queued: never started, left `running` for the rescuer.
      if (abort.signal.aborted || entry.lost) {
        releasePipelineSlot();
        if (entry.lost) jobLog.warn("lease lost before the run started; not run");
        return;
      }
      // The run's span, in the submitter's trace (tracing.ts); the pipeline runs inside it.
      span = startRunSpan(job, trace);
      if (entry.cancelRequested) {
        // Cancelled while queued here: it never runs, and ends cancelled.
        releasePipelineSlot();
        const now = new Date();
        const response = lifecycle.buildResponse(job, {
          pipeline: job.request.use_case,
          error: "cancelled before its run started",
          result: null,
          startedAt: now,
          finishedAt: now,
          durationMs: 0,
          attempt: job.attempts + 1,
        });
        const status = await complete(job, response, { kind: "cancelled" });
        finished(job, span, response, status);
        jobLog.info({ status }, "job cancelled before it started");
        return;
      }
      let run: ReturnType<typeof startPipeline>;
      try {
        run = startPipeline({
          job,
          registry,
          threads,
          timeoutMs: config.pipelineTimeoutSeconds * 1000,
          killGraceMs: config.killGraceSeconds * 1000,
          maxResultBytes: config.maxResultBytes,
          log: jobLog,
          signal: abort.signal,
          cancel: stop.signal,
          cancelGraceMs: config.cancelGraceSeconds * 1000,
          trace: { context: span.context, headers: span.headers },
        });
      } catch (error) {
        // Nothing started (e.g. the threads are closed): the slot is free again.
        releasePipelineSlot();
        span.end("abandoned");
        throw error;
      }
      let stopped = false;
      const released = run.stopped.then(() => {
        stopped = true;
        releasePipelineSlot();
      });
      const verdict = await run.verdict;
      const { response } = verdict;
      if (!stopped) {
        // Answered (timeout) but not stopped: the slot stays taken, and counts against claims, until the run ends.
        lingering++;
        void released.then(() => {
          lingering--;
          if (!stopping) scheduleFill();
        });
      }
      // Cut off by a hard stop: the run did not finish, so nothing is stored.
      if (abort.signal.aborted) {
        span.end("abandoned");
        return;
      }
      // No longer ours: storing would be fenced out anyway.
      if (entry.lost) {
        span.end("lost");
        jobLog.warn("run stopped: its lease was lost (the job was rescued or ended elsewhere); result dropped");
        return;
      }
      const outcome = decide(entry, verdict);
      const status = await complete(job, response, outcome);
      finished(job, span, response, status);
      if (status === null) jobLog.warn("response not stored: the job was swept and re-run or finished meanwhile (fenced)");
      else if (status === "pending") {
        jobLog.info({ error: logText(response.error ?? ""), retryInSeconds: outcome.kind === "retry" ? outcome.delaySeconds : undefined }, "job failed retryably; retried later");
      } else if (status === "cancelled") jobLog.info("job cancelled");
      else if (status === "error") jobLog.info({ error: logText(response.error ?? "") }, "job ended error");
      else jobLog.debug("job done");
    })()
      .catch((error: unknown) => {
        jobLog.error({ err: error }, "job run failed unexpectedly; left for the rescuer");
        span?.end("failed", error instanceof Error ? error.message : String(error));
      })
      .finally(() => {
        active.delete(job.job_id);
        // A claim may have come back short for want of room in this job's capped
        // use_case, which its end has just made: claim again even if nothing new was submitted.
        if (!stopping) scheduleFill(Object.hasOwn(config.useCaseConcurrency, job.request.use_case));
      });
    entry.done = done;
    active.set(job.job_id, entry);
    return done;
  }

  /** Jobs this runner may still claim: running, queued and not-yet-stored jobs all count. */
  function freeSlots(): number {
    return config.concurrency + config.prefetch - active.size - lingering - reserved;
  }

  /** Claims up to `limit` jobs (within the free slots) and starts them; returns their completions. */
  async function claimAndStart(limit: number): Promise<Promise<void>[]> {
    const want = Math.min(limit, freeSlots());
    if (want <= 0) return [];
    reserved += want;
    try {
      const began = performance.now();
      const claimed = await jobs.claimPendingRuns(db, {
        limit: want,
        leaseSeconds: config.leaseSeconds,
        useCases,
        useCaseConcurrency: config.useCaseConcurrency,
        onUnreadable: (row, outcome) =>
          log.warn({ job_id: row.jobId, client_id: row.clientId, reason: row.reason, outcome }, "job row is not a valid job"),
      });
      metrics.claimed((performance.now() - began) / 1000);
      reserved -= want;
      return claimed.map(({ job, trace }) => {
        // Both instants are the database's clock: started_at is the claim's now(), run_at when the job became due.
        if (job.started_at !== null) metrics.jobClaimed(job.request.use_case, (Date.parse(job.started_at) - Date.parse(job.run_at)) / 1000);
        return startJob(job, trace);
      });
    } catch (error) {
      reserved -= want;
      throw error;
    }
  }

  const claimLoop = createClaimLoop({
    room: () => {
      // With a local queue, refill once it is half drained: each claim fetches a
      // large batch, and arrives before the pipelines run out of queued jobs.
      if (config.prefetch > 0 && slotWaiters.length >= Math.max(config.concurrency, config.prefetch / 2)) return 0;
      return freeSlots(); // a finishing job runs the loop again
    },
    claim: async (limit) => (await claimAndStart(limit)).length,
    isActive: () => started && !stopping,
    signal: stopClaiming.signal,
    onError: (error, retryInMs) => logDbError(log, error, "claiming jobs", retryInMs),
  });

  // Jobs stored in one flush finish in the same tick: one claim refills all their slots.
  let fillScheduled = false;
  let fillWakes = false;
  /** Claims for the freed slots on the next turn; `wake`: even if the last claim found no more work waiting. */
  function scheduleFill(wake = false): void {
    fillWakes ||= wake;
    if (fillScheduled) return;
    fillScheduled = true;
    setImmediate(() => {
      fillScheduled = false;
      const wakes = fillWakes;
      fillWakes = false;
      if (wakes) claimLoop.wake();
      else void claimLoop.run();
    });
  }

  return {
    start() {
      started = true;
      claimLoop.wake();
    },
    wake: claimLoop.wake,
    async runOnce() {
      const running = await claimAndStart(freeSlots());
      await Promise.all(running);
      return running.length;
    },
    stop() {
      stopping = true;
      stopClaiming.abort();
    },
    async settled() {
      await Promise.all([...active.values()].map((a) => a.done));
    },
    abandon() {
      const abandoned = active.size;
      hardStop.abort();
      for (const { abort } of active.values()) abort.abort(new Error("worker shutting down"));
      return abandoned;
    },
    heldRuns() {
      return [...active.values()].map(({ job }) => ({ jobId: job.job_id, attempts: job.attempts }));
    },
    cancelRuns(jobIds) {
      for (const id of jobIds) {
        const entry = active.get(id);
        if (!entry || entry.cancelRequested || entry.lost) continue;
        entry.cancelRequested = true;
        log.info({ job_id: id, cancelGraceSeconds: config.cancelGraceSeconds }, "cancel requested: stopping the run");
        entry.stop.abort(new Error("its cancel was requested"));
      }
    },
    loseRuns(jobIds) {
      for (const id of jobIds) {
        const entry = active.get(id);
        if (!entry || entry.lost) continue;
        entry.lost = true;
        entry.stop.abort(new Error("its lease was lost"));
      }
    },
    get inFlight() {
      return active.size;
    },
    get runningPipelines() {
      return runningPipelines;
    },
  };
}
