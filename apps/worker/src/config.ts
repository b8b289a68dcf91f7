import { lifecycle, type PoolMode } from "@ix/store";
import type { ResolveHost } from "./callback-sender.ts";

/**
 * Everything a worker needs to know, as plain values. Built from the
 * environment by `workerConfigFromEnv` (env.ts), or directly by tests and
 * embedding code with `workerConfig({ … })`.
 */
export interface WorkerConfig {
  /** Jobs in flight at once (IX_WORKER_CONCURRENCY). */
  concurrency: number;
  /**
   * The use_cases this worker claims (IX_WORKER_USE_CASES); each needs a
   * registered pipeline. null: every registered pipeline's.
   */
  useCases: readonly string[] | null;
  /**
   * Caps on running jobs per use_case across all workers (IX_USE_CASE_CONCURRENCY),
   * e.g. `{ ocr: 4 }`. Each claim counts the use_case's running rows in the
   * database, so every worker must be given the same caps.
   */
  useCaseConcurrency: Readonly<Record<string, number>>;
  /**
   * Jobs claimed ahead of free pipeline slots: a local queue, so one claim
   * fetches many jobs and a slot never waits on a round trip (graphile-worker's
   * `localQueue`). 0 (the default) claims only what runs at once. Prefetched
   * jobs are `running` from their claim, so keep the queue short enough to
   * start well within the sweep horizon (2 × pipeline timeout); a job swept
   * while queued is run again by its new claimer and the stale run is fenced out.
   */
  prefetch: number;
  /** Pipeline timeout; the sweep horizon is twice this (IX_PIPELINE_REQUEST_TIMEOUT_SECONDS). */
  pipelineTimeoutSeconds: number;
  /** Runs a job may have when neither the job nor its pipeline's retry policy says (IX_MAX_ATTEMPTS): bounds retries and rescues alike. */
  maxAttempts: number;
  /** Sweeper period (IX_SWEEP_INTERVAL_SECONDS). */
  sweepIntervalSeconds: number;
  /** Fallback poll when no NOTIFY arrives, for claims and due callbacks (IX_WORKER_POLL_INTERVAL_SECONDS). */
  pollIntervalSeconds: number;
  /** How long stop() waits for in-flight work (IX_SHUTDOWN_GRACE_SECONDS). */
  shutdownGraceSeconds: number;
  /** What the database URL reaches (IX_POSTGRES_POOL_MODE): `transaction` for a transaction pooler, where nothing may keep session state. */
  poolMode: PoolMode;
  /**
   * Direct PostgreSQL URL for the LISTEN connection (IX_LISTEN_URL). Null: LISTEN on a connection of
   * the worker's pool, or, in transaction mode, not at all: the worker then finds work by polling.
   */
  listenUrl: string | null;
  /** How long a claimed run is leased (IX_LEASE_SECONDS); the rescuer takes back runs whose lease ran out. */
  leaseSeconds: number;
  /**
   * A statement that hears nothing from the server for this long closes its connection as dead and is
   * retried on a new one (IX_POSTGRES_SOCKET_TIMEOUT_MS): bounds a network partition; 0 = none.
   */
  socketTimeoutMs: number;
  callback: CallbackConfig;
  /**
   * Where pipelines run (IX_PIPELINE_ISOLATION). `thread`: built-in pipelines
   * and pipelines loaded from modules run in a pool of `concurrency` worker
   * threads, so a CPU-bound run cannot stall the worker's loop and a run that
   * ignores its signal is terminated; pipelines registered in code as objects
   * still run inline (a closure cannot cross threads). `inline`: all run on the
   * worker's event loop.
   */
  isolation: PipelineIsolation;
  /** After a run's timeout, how long it may take to honour its signal before its thread is terminated (IX_PIPELINE_KILL_GRACE_SECONDS). */
  killGraceSeconds: number;
  /** Largest serialized result a pipeline may return; larger ends the job `error` (IX_MAX_RESULT_BYTES). */
  maxResultBytes: number;
  /** Backoff before a retryable failure's next run, unless the pipeline's policy says: full jitter in [0, min(max, base × 2^(n−1))] (IX_RETRY_BASE_SECONDS, IX_RETRY_MAX_SECONDS). */
  retryBaseSeconds: number;
  retryMaxSeconds: number;
  /** After a cancel (or a lost lease) aborts a run's signal, how long it may take to stop before its thread is terminated (IX_CANCEL_GRACE_SECONDS). */
  cancelGraceSeconds: number;
  /**
   * Where the worker serves GET /metrics while it runs (IX_WORKER_METRICS_HOST,
   * IX_WORKER_METRICS_PORT; port 0 picks a free one); null serves none. The
   * figures are kept either way (`Worker.metrics`).
   */
  metrics: { host: string; port: number } | null;
}

export const PIPELINE_ISOLATIONS = ["thread", "inline"] as const;
export type PipelineIsolation = (typeof PIPELINE_ISOLATIONS)[number];

export interface CallbackConfig {
  /** Decoded IX_CALLBACK_SECRET; null sends callbacks unsigned. */
  secret: Buffer | null;
  /** Per attempt (IX_CALLBACK_TIMEOUT_SECONDS). */
  timeoutSeconds: number;
  /** Hosts, addresses and CIDRs allowed despite being non-public (IX_CALLBACK_ALLOWED_HOSTS). */
  allowedHosts: string[];
  /** Attempts before callback_status = failed (IX_CALLBACK_MAX_ATTEMPTS). */
  maxAttempts: number;
  /** Backoff before retry n is random in [0, min(max, base × 2^(n−1))] (full jitter). */
  retryBaseSeconds: number;
  retryMaxSeconds: number;
  /** Deliveries in flight at once. */
  concurrency: number;
  /** How much of a failed response's body is read. */
  responseBodyCapBytes: number;
  /** DNS resolution for callback hosts; the system resolver unless a test plays DNS. */
  resolve?: ResolveHost;
  /**
   * Deliveries in flight at once to one host, per worker (IX_CALLBACK_HOST_CONCURRENCY),
   * so a receiver that hangs holds at most this many of `concurrency` slots.
   * Kept in the worker's memory: in-flight counts die with their process, so a
   * shared counter would need leases of its own.
   */
  hostConcurrency: number;
  /** The circuit breaker: pause a host after this many failing deliveries in a row, for this long. */
  breaker: { failures: number; cooldownSeconds: number };
  /** Egress proxy every delivery goes through (IX_CALLBACK_PROXY_URL); null sends directly. */
  proxyUrl: string | null;
}

export const DEFAULT_WORKER_CONFIG: Readonly<WorkerConfig> = Object.freeze({
  concurrency: 4,
  useCases: null,
  useCaseConcurrency: Object.freeze({}),
  prefetch: 0,
  pipelineTimeoutSeconds: 60,
  maxAttempts: 3,
  sweepIntervalSeconds: 30,
  pollIntervalSeconds: 2,
  shutdownGraceSeconds: 30,
  poolMode: "session",
  listenUrl: null,
  leaseSeconds: lifecycle.DEFAULT_LEASE_SECONDS,
  socketTimeoutMs: 30_000,
  callback: Object.freeze({
    secret: null,
    timeoutSeconds: 10,
    allowedHosts: [],
    maxAttempts: 10,
    retryBaseSeconds: 5,
    retryMaxSeconds: 600,
    concurrency: 8,
    responseBodyCapBytes: 4096,
    hostConcurrency: 2,
    breaker: Object.freeze({ failures: 5, cooldownSeconds: 60 }),
    proxyUrl: null,
  }),
  isolation: "thread",
  killGraceSeconds: 5,
  maxResultBytes: 1_048_576,
  retryBaseSeconds: 5,
  retryMaxSeconds: 300,
  cancelGraceSeconds: 10,
  metrics: null,
});

export type WorkerConfigOverrides = Partial<Omit<WorkerConfig, "callback">> & { callback?: Partial<CallbackConfig> };

/** The defaults with some values replaced. */
export function workerConfig(overrides: WorkerConfigOverrides = {}): WorkerConfig {
  return {
    ...DEFAULT_WORKER_CONFIG,
    ...overrides,
    callback: { ...DEFAULT_WORKER_CONFIG.callback, allowedHosts: [], ...overrides.callback },
  };
}

/**
 * Pool settings for a worker's own connections: the LISTEN connection, one
 * claim, one completion flush and the callback deliveries at once (pipelines
 * use none). `ix worker` and `ix start` both connect with these.
 */
export function workerPoolOptions(config: WorkerConfig): { applicationName: string; max: number; poolMode: PoolMode; socketTimeoutMillis: number } {
  return {
    applicationName: "ix-worker",
    max: Math.max(4, Math.min(config.callback.concurrency + 3, 20)),
    poolMode: config.poolMode,
    socketTimeoutMillis: config.socketTimeoutMs,
  };
}
