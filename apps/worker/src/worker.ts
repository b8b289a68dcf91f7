import type { Job, ResponseIX } from "@ix/contracts";
import { type CallbackDelivery, type CallbackOutcome, type Completion, type Database, isTransientDbError, jobs } from "@ix/store";
import { type Logger, pino } from "pino";
import { retryDelaySeconds } from "./backoff";
import { type CallbackSender, createCallbackSender } from "./callback-sender";
import { createCallbackTargetPolicy } from "./callback-target-policy";
import { createClaimLoop, FIRST_DB_RETRY_MS, MAX_DB_RETRY_MS } from "./claim-loop";
import type { WorkerConfig } from "./config";
import { pause } from "./pause";
import { listenForPending, type PendingListener } from "./pending-listener";
import { type AnyPipeline, PipelineRegistry, runPipeline } from "./pipeline";

export interface WorkerOptions {
  db: Database;
  pipelines: PipelineRegistry | Iterable<AnyPipeline>;
  config: WorkerConfig;
  /** Omit for a silent worker. */
  logger?: Logger;
  /** Jitter source for callback backoff; injected by deterministic tests. */
  random?: () => number;
}

export interface Worker {
  /** Sweeps, starts listening and polling, and begins claiming jobs and delivering callbacks. */
  start(): Promise<void>;
  /**
   * Stops claiming and waits up to the grace period for in-flight jobs and
   * deliveries. Jobs still running then are abandoned as they are (left
   * `running` for the sweeper, spec §5). Reports how many were abandoned.
   */
  stop(options?: { graceSeconds?: number }): Promise<{ abandonedJobs: number }>;
  /** One claim of up to the free slots; resolves when those jobs are finished and stored. Returns how many were claimed. */
  runOnce(): Promise<number>;
  /** One sweep of orphaned running jobs (spec §3). */
  sweepOnce(options?: { now?: Date }): Promise<{ requeued: string[]; failed: string[] }>;
  /** Claims due callback deliveries, sends them, records the outcomes. Returns how many were attempted. */
  deliverDueOnce(options?: { now?: Date }): Promise<number>;
  /** Jobs claimed and not yet stored. */
  readonly inFlight: number;
}

/**
 * A worker (spec §5): claims pending jobs in batches up to its free slots,
 * runs each through its pipeline, stores the responses in batched fenced
 * writes, delivers callbacks from the durable state in the row, and sweeps
 * orphans. Every loop is split from its single step so tests drive the steps.
 */
export function createWorker({ db, pipelines, config, logger, random = Math.random }: WorkerOptions): Worker {
  const log = logger ?? pino({ level: "silent" });
  const registry = pipelines instanceof PipelineRegistry ? pipelines : new PipelineRegistry(pipelines);
  const sender: CallbackSender = createCallbackSender({
    policy: createCallbackTargetPolicy(config.callback.allowedHosts),
    timeoutMs: config.callback.timeoutSeconds * 1000,
    secret: config.callback.secret,
    responseBodyCapBytes: config.callback.responseBodyCapBytes,
    ...(config.callback.resolve ? { resolve: config.callback.resolve } : {}),
  });
  // A delivery that dies mid-POST is re-sent once its lease runs out; the
  // lease outlasts any attempt, so a live attempt is never sent twice.
  const leaseSeconds = config.callback.timeoutSeconds * 2 + 5;

  /** Claimed jobs not yet stored, with the controller a hard stop aborts. */
  const active = new Map<string, { done: Promise<void>; abort: AbortController }>();
  /** Slots promised to claims in progress, so concurrent claims never exceed the concurrency. */
  let reserved = 0;
  const deliveries = new Set<Promise<void>>();
  let reservedDeliveries = 0;

  let started = false;
  let stopping = false;
  /** Aborts sleeps of the claim and delivery loops on stop. */
  const stopLoops = new AbortController();
  /** Aborts pipelines and store retries when the grace period is over. */
  const hardStop = new AbortController();
  let listener: PendingListener | null = null;
  const timers: NodeJS.Timeout[] = [];
  const retryTimers = new Set<NodeJS.Timeout>();

  function logDbError(error: unknown, what: string, retryInMs?: number): void {
    if (isTransientDbError(error)) log.warn({ err: error, retryInMs }, `${what}: database unavailable`);
    else log.error({ err: error, retryInMs }, `${what} failed`);
  }

  // ---- completions, batched: every completion of one tick goes in one statement ----

  type Pending = { completion: Completion; job: Job; resolve(applied: boolean): void };
  let buffer: Pending[] = [];
  let flushing: Promise<void> | null = null;

  function complete(job: Job, response: ResponseIX): Promise<boolean> {
    return new Promise((resolve) => {
      buffer.push({ completion: { jobId: job.job_id, attempts: job.attempts, response }, job, resolve });
      if (!flushing) flushing = new Promise<void>((r) => setImmediate(r)).then(flush);
    });
  }

  async function flush(): Promise<void> {
    while (buffer.length > 0) {
      const batch = buffer;
      buffer = [];
      const applied = await storeCompletions(batch.map((p) => p.completion));
      let callbacks = false;
      for (const p of batch) {
        const ok = applied.has(p.completion.jobId);
        if (ok && p.job.callback_url !== null) callbacks = true;
        p.resolve(ok);
      }
      if (callbacks) wakeDelivery();
    }
    flushing = null;
  }

  /** completeMany, retried while the database is away; gives up only at a hard stop (the sweeper then recovers the jobs). */
  async function storeCompletions(completions: Completion[]): Promise<Set<string>> {
    let delay = FIRST_DB_RETRY_MS;
    for (;;) {
      try {
        return new Set(await jobs.completeMany(db, completions));
      } catch (error) {
        if (!isTransientDbError(error) || hardStop.signal.aborted) {
          log.error({ err: error, jobIds: completions.map((c) => c.jobId) }, "storing responses failed; the jobs stay running for the sweeper");
          return new Set();
        }
        logDbError(error, "storing responses", delay);
        await pause(delay, hardStop.signal);
        delay = Math.min(delay * 2, MAX_DB_RETRY_MS);
      }
    }
  }

  // ---- jobs ----

  // Pipelines run at most `concurrency` at once; claimed jobs beyond that
  // (prefetch) wait here for a slot. A slot frees when the pipeline returns,
  // not when its response is stored, so storing never idles a slot.
  let runningPipelines = 0;
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

  function startJob(job: Job): Promise<void> {
    const abort = new AbortController();
    const jobLog = log.child({ job_id: job.job_id, use_case: job.request.use_case, attempt: job.attempts + 1 });
    const done = (async () => {
      await acquirePipelineSlot();
      let response: ResponseIX;
      try {
        // Hard-stopped while queued: never started, left `running` for the sweeper.
        if (abort.signal.aborted) return;
        response = await runPipeline({
          job,
          registry,
          timeoutMs: config.pipelineTimeoutSeconds * 1000,
          log: jobLog,
          signal: abort.signal,
        });
      } finally {
        releasePipelineSlot();
      }
      // Cut off by a hard stop: the run did not finish, so nothing is stored.
      if (abort.signal.aborted) return;
      const applied = await complete(job, response);
      if (!applied) jobLog.warn("response not stored: the job was swept and re-run or finished meanwhile (fenced)");
      else if (response.error !== null) jobLog.info({ error: response.error }, "job ended error");
      else jobLog.debug("job done");
    })()
      .catch((error: unknown) => jobLog.error({ err: error }, "job run failed unexpectedly; left for the sweeper"))
      .finally(() => {
        active.delete(job.job_id);
        if (!stopping) scheduleFill();
      });
    active.set(job.job_id, { done, abort });
    return done;
  }

  /** Jobs this worker may still claim: running, queued and not-yet-stored jobs all count. */
  function freeSlots(): number {
    return config.concurrency + config.prefetch - active.size - reserved;
  }

  /** Claims up to `limit` jobs (within the free slots) and starts them; returns their completions. */
  async function claimAndStart(limit: number): Promise<Promise<void>[]> {
    const want = Math.min(limit, freeSlots());
    if (want <= 0) return [];
    reserved += want;
    try {
      const claimed = await jobs.claimPending(db, { limit: want });
      reserved -= want;
      return claimed.map(startJob);
    } catch (error) {
      reserved -= want;
      throw error;
    }
  }

  async function runOnce(): Promise<number> {
    const running = await claimAndStart(freeSlots());
    await Promise.all(running);
    return running.length;
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
    signal: stopLoops.signal,
    onError: (error, retryInMs) => logDbError(error, "claiming jobs", retryInMs),
  });
  const wake = claimLoop.wake;

  // Jobs stored in one flush finish in the same tick: one claim refills all their slots.
  let fillScheduled = false;
  function scheduleFill(): void {
    if (fillScheduled) return;
    fillScheduled = true;
    setImmediate(() => {
      fillScheduled = false;
      void claimLoop.run();
    });
  }

  // ---- sweeper ----

  async function sweepOnce({ now }: { now?: Date } = {}) {
    const swept = await jobs.rescueOrphans(db, {
      horizonSeconds: 2 * config.pipelineTimeoutSeconds,
      maxAttempts: config.maxAttempts,
      ...(now ? { now } : {}),
    });
    if (swept.requeued.length > 0 || swept.failed.length > 0) log.warn(swept, "swept orphaned jobs");
    if (swept.requeued.length > 0 && started) wake();
    if (swept.failed.length > 0 && started) wakeDelivery();
    return swept;
  }

  // ---- callbacks ----

  async function deliver({ job, attempt }: CallbackDelivery): Promise<void> {
    const deliveryLog = log.child({ job_id: job.job_id, callback_attempt: attempt });
    const result = await sender.send(job);
    let outcome: CallbackOutcome;
    if (result.ok) outcome = { kind: "delivered" };
    else if (result.permanent || attempt >= config.callback.maxAttempts) outcome = { kind: "failed", error: result.error };
    else {
      const delaySeconds = retryDelaySeconds(
        attempt,
        { baseSeconds: config.callback.retryBaseSeconds, maxSeconds: config.callback.retryMaxSeconds },
        random,
      );
      outcome = { kind: "retry", error: result.error, delaySeconds };
    }
    try {
      const recorded = await jobs.recordCallbackAttempt(db, { jobId: job.job_id, attempt, outcome });
      if (!recorded) deliveryLog.warn("delivery outcome not recorded: its lease ran out and another attempt owns it");
    } catch (error) {
      // The lease runs out and the attempt is made again: at-least-once, which the stable webhook-id lets receivers absorb.
      logDbError(error, "recording a callback attempt");
      return;
    }
    if (outcome.kind === "delivered") deliveryLog.info({ status: result.ok ? result.status : undefined }, "callback delivered");
    else if (outcome.kind === "failed") deliveryLog.warn({ error: outcome.error }, "callback failed for good");
    else {
      deliveryLog.info({ error: outcome.error, retryInSeconds: outcome.delaySeconds }, "callback attempt failed; will retry");
      if (started && !stopping) {
        // The poll would find it too; this keeps short retry delays short.
        const timer = setTimeout(() => {
          retryTimers.delete(timer);
          wakeDelivery();
        }, outcome.delaySeconds * 1000 + 10);
        retryTimers.add(timer);
      }
    }
  }

  function deliveryRoom(): number {
    return config.callback.concurrency - deliveries.size - reservedDeliveries;
  }

  async function claimDeliveries(now?: Date): Promise<Promise<void>[]> {
    const free = deliveryRoom();
    if (free <= 0) return [];
    reservedDeliveries += free;
    let due: CallbackDelivery[];
    try {
      due = await jobs.claimDueCallbacks(db, { limit: free, leaseSeconds, ...(now ? { now } : {}) });
    } finally {
      reservedDeliveries -= free;
    }
    return due.map((delivery) => {
      const sending: Promise<void> = deliver(delivery)
        .catch((error: unknown) => log.error({ err: error, job_id: delivery.job.job_id }, "callback delivery failed unexpectedly"))
        .finally(() => {
          deliveries.delete(sending);
          void deliveryLoop.run();
        });
      deliveries.add(sending);
      return sending;
    });
  }

  async function deliverDueOnce({ now }: { now?: Date } = {}): Promise<number> {
    const sending = await claimDeliveries(now);
    await Promise.all(sending);
    return sending.length;
  }

  const deliveryLoop = createClaimLoop({
    room: deliveryRoom,
    claim: async () => (await claimDeliveries()).length,
    isActive: () => started && !stopping,
    signal: stopLoops.signal,
    onError: (error, retryInMs) => logDbError(error, "claiming callback deliveries", retryInMs),
  });
  const wakeDelivery = deliveryLoop.wake;

  // ---- lifecycle ----

  async function sweepLogged(): Promise<void> {
    try {
      await sweepOnce();
    } catch (error) {
      logDbError(error, "sweeping orphaned jobs");
    }
  }

  async function start(): Promise<void> {
    if (started) throw new Error("worker already started");
    if (stopping) throw new Error("a stopped worker cannot be restarted; create a new one");
    started = true;
    log.info(
      { concurrency: config.concurrency, pipelines: registry.names, timeoutSeconds: config.pipelineTimeoutSeconds },
      "worker starting",
    );
    await sweepLogged();
    listener = listenForPending({
      pool: db.$client,
      channel: jobs.PENDING_CHANNEL,
      onNotify: wake,
      onListening: wake,
      log,
    });
    timers.push(
      setInterval(() => {
        wake();
        wakeDelivery();
      }, config.pollIntervalSeconds * 1000),
      setInterval(() => void sweepLogged(), config.sweepIntervalSeconds * 1000),
    );
    wake();
    wakeDelivery();
  }

  async function stop({ graceSeconds = config.shutdownGraceSeconds }: { graceSeconds?: number } = {}) {
    if (stopping) throw new Error("worker already stopping");
    stopping = true;
    stopLoops.abort();
    for (const timer of timers) clearInterval(timer);
    for (const timer of retryTimers) clearTimeout(timer);
    await listener?.close();
    const inFlight = [...[...active.values()].map((a) => a.done), ...deliveries];
    log.info({ jobs: active.size, deliveries: deliveries.size, graceSeconds }, "worker stopping; finishing in-flight work");
    let graceTimer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<"grace over">((resolve) => {
      graceTimer = setTimeout(() => resolve("grace over"), graceSeconds * 1000);
    });
    const finished = await Promise.race([Promise.all(inFlight).then(() => "finished" as const), graceOver]);
    clearTimeout(graceTimer);
    const abandonedJobs = finished === "finished" ? 0 : active.size;
    if (finished !== "finished") {
      log.warn({ jobs: active.size, deliveries: deliveries.size }, "grace period over; abandoning in-flight work to the sweeper and delivery lease");
      hardStop.abort();
      for (const { abort } of active.values()) abort.abort(new Error("worker shutting down"));
    }
    await sender.close({ force: finished !== "finished" }).catch((error: unknown) => log.debug({ err: error }, "closing the callback agent"));
    log.info({ abandonedJobs }, "worker stopped");
    return { abandonedJobs };
  }

  return {
    start,
    stop,
    runOnce,
    sweepOnce,
    deliverDueOnce,
    get inFlight() {
      return active.size;
    },
  };
}
