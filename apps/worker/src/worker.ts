import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { createPool, type Database, isTransientDbError, jobs, logSerializers, workers } from "@ix/store";
import { type Logger, pino } from "pino";
import { createCallbackSender } from "./callback-sender.ts";
import { createCallbackTargetPolicy } from "./callback-target-policy.ts";
import type { WorkerConfig } from "./config.ts";
import { logDbError, retryWhileDbAway } from "./db-retry.ts";
import { createWorkerMetrics, type WorkerMetrics } from "./metrics.ts";
import { type MetricsServer, serveMetrics } from "./metrics-server.ts";
import { listenForPending, type PendingListener } from "./pending-listener.ts";
import { type AnyPipeline, PipelineRegistry } from "./pipeline.ts";
import { PipelineThreads } from "./pipeline-threads.ts";
import { createCallbackDispatcher } from "./services/callback-dispatcher.ts";
import { createJobRunner } from "./services/job-runner.ts";
import { createLeaseKeeper } from "./services/lease-keeper.ts";
import { createRescuer } from "./services/rescuer.ts";
import { checkUseCaseCaps, servedUseCases } from "./use-cases.ts";

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
  /** This worker's id: a random uuid, fresh per worker, the key of its row in `ix_workers`. */
  readonly id: string;
  /** The use_cases it claims: IX_WORKER_USE_CASES, or every registered pipeline's. */
  readonly useCases: readonly string[];
  /**
   * Starts every pipeline thread (thread isolation: one per slot) and waits
   * until each has loaded its pipelines, rejecting with a module's load error.
   * `start()` only starts the first and lets the pool grow as runs overlap;
   * call this to have them all ready, e.g. to keep their start-up out of a measurement.
   */
  warmUp(): Promise<void>;
  /**
   * Starts a first pipeline thread, registers the worker in `ix_workers` (retried while the database is
   * away), rescues orphans, starts listening and polling, and begins claiming jobs and delivering callbacks.
   */
  start(): Promise<void>;
  /**
   * Stops claiming and waits up to the grace period for in-flight jobs and
   * deliveries. Jobs still running then are abandoned as they are: left
   * `running`; their leases are no longer renewed, so a rescuer re-runs them once the lease runs out.
   * Aborting `force` ends the grace period at once. Reports how many jobs were abandoned.
   */
  stop(options?: { graceSeconds?: number; force?: AbortSignal }): Promise<{ abandonedJobs: number }>;
  /** One claim of up to the free slots; resolves when those jobs are finished and stored. Returns how many were claimed. */
  runOnce(): Promise<number>;
  /** One renewal of the leases of this worker's runs (it also runs every third of IX_LEASE_SECONDS once started). */
  renewLeasesOnce(options?: { now?: Date }): Promise<jobs.RenewLeasesResult>;
  /** One pass of the rescuer over orphaned running jobs. */
  sweepOnce(options?: { now?: Date }): Promise<jobs.RescueResult>;
  /** Claims due callback deliveries, sends them, records the outcomes. Returns how many were attempted. */
  deliverDueOnce(options?: { now?: Date }): Promise<number>;
  /** Jobs claimed and not yet stored. */
  readonly inFlight: number;
  /** Pipeline runs not yet stopped, including runs past their timeout that are still within the kill grace. */
  readonly runningPipelines: number;
  /** This worker's Prometheus figures (docs/OPERATIONS.md, "Metrics"), served on `metricsUrl` when configured. */
  readonly metrics: WorkerMetrics;
  /** Where GET /metrics is served once started (WorkerConfig.metrics); null when not served. */
  readonly metricsUrl: string | null;
}

/**
 * A worker: a job runner, a callback dispatcher and a rescuer, woken by
 * LISTEN and a fallback poll. This file only wires them; each service owns
 * its loop and state, and exposes the single step tests drive
 * (README.md, "How a worker is built").
 */
export function createWorker({ db, pipelines, config, logger, random = Math.random }: WorkerOptions): Worker {
  // Whatever logger the caller passes, errors are written by the one log-safe serializer (no query parameters, no client data).
  const log = (logger ?? pino({ level: "silent" })).child({}, { serializers: logSerializers });
  const registry = pipelines instanceof PipelineRegistry ? pipelines : new PipelineRegistry(pipelines);
  // Checked before anything is started, so a bad setting leaves nothing to clean up.
  const useCases = servedUseCases(registry, config.useCases);
  checkUseCaseCaps(config.useCaseConcurrency);
  const metrics = createWorkerMetrics();
  const registration: workers.WorkerRegistration = {
    id: randomUUID(),
    host: hostname(),
    pid: process.pid,
    useCases,
    concurrency: config.concurrency,
  };
  // Only pipelines that can be loaded again in a thread (built-ins, modules) run there; see WorkerConfig.isolation.
  const threads =
    config.isolation === "thread" && registry.names.some((name) => registry.threadSource(name) !== undefined)
      ? new PipelineThreads({
          threads: config.concurrency,
          modules: registry.threadModules,
          maxResultBytes: config.maxResultBytes,
          log,
          onRestart: (reason) => metrics.threadRestarted(reason),
        })
      : null;
  const sender = createCallbackSender({
    policy: createCallbackTargetPolicy(config.callback.allowedHosts),
    timeoutMs: config.callback.timeoutSeconds * 1000,
    secret: config.callback.secret,
    responseBodyCapBytes: config.callback.responseBodyCapBytes,
    ...(config.callback.resolve ? { resolve: config.callback.resolve } : {}),
    proxyUrl: config.callback.proxyUrl,
  });
  const dispatcher = createCallbackDispatcher({ db, sender, config: config.callback, log, random, metrics });
  const runner = createJobRunner({ db, registry, threads, config, useCases, log, onCallbacksDue: () => dispatcher.wake(), metrics });
  metrics.observeSlots(() => ({ busy: runner.runningPipelines, total: config.concurrency, inFlight: runner.inFlight }));
  const leaseKeeper = createLeaseKeeper({
    db,
    config,
    log,
    held: () => runner.heldRuns(),
    onLost: (ids) => runner.loseRuns(ids),
    onCancelRequested: (ids) => runner.cancelRuns(ids),
    refreshRegistration: () => workers.registerWorker(db, registration),
  });
  const rescuer = createRescuer({
    db,
    config,
    policyMaxAttempts: (useCase) => registry.retryPolicy(useCase)?.maxAttempts,
    log,
    onRequeued: () => runner.wake(),
    // Jobs ended `error` or `cancelled` may have callbacks due.
    onFailed: () => dispatcher.wake(),
    metrics,
  });

  let started = false;
  let stopping = false;
  let listener: PendingListener | null = null;
  let poll: NodeJS.Timeout | undefined;
  let metricsServer: MetricsServer | null = null;
  /** Ends the start-up registration's retries when the worker is stopped meanwhile. */
  const stopStarting = new AbortController();

  /**
   * LISTEN needs a session of its own, which a transaction pooler cannot give
   * (docs/ARCHITECTURE.md, "Behind a pooler"): it uses IX_LISTEN_URL when set,
   * else a connection of the worker's pool, except in transaction mode, where
   * the worker relies on its poll alone.
   */
  function listen(): PendingListener | null {
    if (!config.listenUrl && config.poolMode === "transaction") {
      log.info(
        { pollIntervalSeconds: config.pollIntervalSeconds },
        "not listening for NOTIFY: IX_POSTGRES_POOL_MODE=transaction and no IX_LISTEN_URL; finding work by polling",
      );
      return null;
    }
    const pool = config.listenUrl
      ? createPool(config.listenUrl, {
          max: 1,
          applicationName: "ix-worker-listen",
          // Never idle (the listener holds or destroys it), so this is not expected; logged if it happens.
          onIdleError: (error) => log.debug({ err: error }, "LISTEN pool: idle connection lost"),
        })
      : db.$client;
    const pending = listenForPending({
      pool,
      channels: {
        [jobs.PENDING_CHANNEL]: () => runner.wake(),
        // The payload is a job id; one this worker does not hold is another worker's to stop.
        [jobs.CANCEL_CHANNEL]: (jobId) => {
          if (jobId) runner.cancelRuns([jobId]);
        },
      },
      // Cancels sent while no one listened are found by the next lease renewal.
      onListening: runner.wake,
      log,
    });
    if (pool === db.$client) return pending;
    return {
      async close() {
        await pending.close();
        await pool.end();
      },
    };
  }

  async function start(): Promise<void> {
    if (started) throw new Error("worker already started");
    if (stopping) throw new Error("a stopped worker cannot be restarted; create a new one");
    started = true;
    log.info(
      {
        workerId: registration.id,
        concurrency: config.concurrency,
        useCases,
        useCaseConcurrency: config.useCaseConcurrency,
        pipelines: registry.names,
        timeoutSeconds: config.pipelineTimeoutSeconds,
        isolation: config.isolation,
        inThreads: threads === null ? [] : registry.names.filter((name) => registry.threadSource(name) !== undefined),
      },
      "worker starting",
    );
    try {
      // One thread proves the modules load in a thread; the pool grows as runs overlap.
      await threads?.ready(1);
    } catch (error) {
      if (stopping) return; // stopped during start-up: stop() closed the threads, nothing more to start
      await threads?.close();
      throw error;
    }
    if (stopping) return;
    try {
      // Before the first claim: the API accepts a use_case only once some worker has registered it.
      await retryWhileDbAway(() => workers.registerWorker(db, registration), {
        signal: stopStarting.signal,
        retryable: isTransientDbError,
        onFailure: (error, retryInMs) => logDbError(log, error, "registering the worker", retryInMs),
      });
    } catch (error) {
      if (stopping) return;
      await threads?.close();
      throw error;
    }
    if (config.metrics !== null) {
      try {
        metricsServer = await serveMetrics(metrics.registry, config.metrics);
      } catch (error) {
        await threads?.close();
        throw new Error(`the worker could not serve metrics on ${config.metrics.host}:${config.metrics.port} (IX_WORKER_METRICS_PORT)`, { cause: error });
      }
      log.info({ url: metricsServer.url }, "serving worker metrics");
    }
    await rescuer.start();
    if (stopping) return; // stopped during the first rescue: nothing more to start
    listener = listen();
    poll = setInterval(() => {
      runner.wake();
      dispatcher.wake();
    }, config.pollIntervalSeconds * 1000);
    leaseKeeper.start();
    runner.start();
    dispatcher.start();
  }

  async function stop({ graceSeconds = config.shutdownGraceSeconds, force }: { graceSeconds?: number; force?: AbortSignal } = {}) {
    if (stopping) throw new Error("worker already stopping");
    stopping = true;
    stopStarting.abort();
    runner.stop();
    dispatcher.stop();
    rescuer.stop();
    clearInterval(poll);
    await listener?.close();
    log.info({ jobs: runner.inFlight, deliveries: dispatcher.inFlight, graceSeconds }, "worker stopping; finishing in-flight work");
    const finished = await withinGrace(Promise.all([runner.settled(), dispatcher.settled()]), graceSeconds, force);
    let abandonedJobs = 0;
    if (!finished) {
      log.warn(
        { jobs: runner.inFlight, deliveries: dispatcher.inFlight },
        "grace period over; abandoning in-flight work to the rescuer and delivery lease",
      );
      abandonedJobs = runner.abandon();
    }
    // Renewed through the grace period; abandoned runs' leases now run out and the rescuer takes them.
    leaseKeeper.stop();
    await dispatcher.close({ force: !finished });
    // Terminates runs past their timeout that are still within the kill grace, and idle threads.
    await threads?.close();
    // Last: the figures of the drain stay readable until the worker is done.
    await metricsServer?.close();
    log.info({ abandonedJobs }, "worker stopped");
    return { abandonedJobs };
  }

  async function warmUp(): Promise<void> {
    await threads?.ready();
  }

  return {
    id: registration.id,
    useCases,
    warmUp,
    start,
    stop,
    runOnce: runner.runOnce,
    renewLeasesOnce: leaseKeeper.runOnce,
    sweepOnce: rescuer.runOnce,
    deliverDueOnce: dispatcher.deliverDueOnce,
    get inFlight() {
      return runner.inFlight;
    },
    get runningPipelines() {
      return runner.runningPipelines;
    },
    metrics,
    get metricsUrl() {
      return metricsServer?.url ?? null;
    },
  };
}

/** Whether `work` settled within the grace period; aborting `force` ends the period early. */
async function withinGrace(work: Promise<unknown>, graceSeconds: number, force?: AbortSignal): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  let onForce: (() => void) | undefined;
  const over = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), graceSeconds * 1000);
    onForce = () => resolve(false);
    if (force?.aborted) onForce();
    else force?.addEventListener("abort", onForce, { once: true });
  });
  try {
    return await Promise.race([work.then(() => true as const), over]);
  } finally {
    clearTimeout(timer);
    if (onForce) force?.removeEventListener("abort", onForce);
  }
}
