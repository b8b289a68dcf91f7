import { ConfigError, envDefault, envVar, optionalEnv, parseEnv, UseCase } from "@ix/contracts";
import { LOG_FORMATS, type TracesExporter, tracesExporterFromEnv } from "@ix/process";
import { POOL_MODES } from "@ix/store";
import { z } from "zod";
import { parseAllowedHosts } from "./callback-target-policy.ts";
import { DEFAULT_WORKER_CONFIG as D, PIPELINE_ISOLATIONS, type WorkerConfig } from "./config.ts";
import { parseWebhookSecret } from "./webhook-signature.ts";

/** Highest cap IX_USE_CASE_CONCURRENCY accepts for one use_case. */
const MAX_USE_CASE_CAP = 100_000;

/**
 * IX_WORKER_USE_CASES: comma-separated use_case names, duplicates dropped. An
 * empty entry or an empty list is an error, never "serve everything": a
 * variable meant to narrow the worker must not silently widen it. Whether
 * each name has a pipeline is checked once the pipelines are loaded
 * (use-cases.ts).
 */
const UseCaseList = z.string().transform((value, ctx): string[] => {
  const names = new Set<string>();
  if (value.trim() === "") {
    ctx.addIssue({ code: "custom", message: "names no use_case; unset it to claim every registered pipeline's jobs" });
    return [];
  }
  for (const [index, raw] of value.split(",").entries()) {
    const name = raw.trim();
    if (name === "") ctx.addIssue({ code: "custom", message: `entry ${index + 1} is empty (a stray comma?)` });
    else names.add(name);
  }
  return [...names];
});

/**
 * IX_USE_CASE_CONCURRENCY: `use_case:limit` pairs, comma-separated (`ocr:4,llm:16`).
 * Each error quotes the entry it is about.
 */
const UseCaseCaps = z.string().transform((value, ctx): Record<string, number> => {
  const caps: Record<string, number> = {};
  for (const [index, raw] of value.split(",").entries()) {
    const entry = raw.trim();
    const parsed = parseCap(entry, index, caps);
    if (typeof parsed === "string") ctx.addIssue({ code: "custom", message: parsed });
    else caps[parsed.name] = parsed.limit;
  }
  return caps;
});

/** One `use_case:limit` entry, or why it is not one. */
function parseCap(entry: string, index: number, caps: Record<string, number>): { name: string; limit: number } | string {
  if (entry === "") return `entry ${index + 1} is empty (a stray comma?); every entry must be use_case:limit, e.g. ocr:4`;
  const colon = entry.lastIndexOf(":");
  if (colon < 0) return `"${entry}" is not use_case:limit, e.g. ocr:4`;
  const name = entry.slice(0, colon).trim();
  const limit = entry.slice(colon + 1).trim();
  if (!UseCase.safeParse(name).success) return `"${entry}": "${name}" is not a use_case name (^[a-z0-9][a-z0-9_.-]*$, 1-64 characters)`;
  if (!/^\d+$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_USE_CASE_CAP) {
    return `"${entry}": the limit must be a whole number from 1 to ${MAX_USE_CASE_CAP}`;
  }
  if (Object.hasOwn(caps, name)) return `"${entry}": ${name} is already capped (at ${caps[name]})`;
  return { name, limit: Number(limit) };
}

/**
 * The worker's environment, parsed once at start-up. process.env is
 * read nowhere else in this package.
 */
export const WorkerEnv = z.object({
  /** The database; required by `ix worker` (ix start embeds one when unset). */
  IX_POSTGRES_URL: optionalEnv(envVar.postgresUrl()),
  /** `transaction` when IX_POSTGRES_URL reaches a transaction pooler: no session state, and LISTEN only through IX_LISTEN_URL. */
  IX_POSTGRES_POOL_MODE: envDefault(z.enum(POOL_MODES), D.poolMode),
  /** A direct PostgreSQL URL for the LISTEN connection, when IX_POSTGRES_URL is a transaction pooler that cannot carry one. */
  IX_LISTEN_URL: optionalEnv(envVar.postgresUrl()),
  /** A statement hearing nothing from the server this long closes its connection as dead (a partition); 0 = never. */
  IX_POSTGRES_SOCKET_TIMEOUT_MS: envDefault(envVar.int(0, 3_600_000), D.socketTimeoutMs),
  /** Jobs in flight per worker process. */
  IX_WORKER_CONCURRENCY: envDefault(envVar.int(1, 1024), D.concurrency),
  /** The use_cases this worker claims, comma-separated; unset: every registered pipeline's. */
  IX_WORKER_USE_CASES: UseCaseList.optional(),
  /**
   * Caps on running jobs per use_case across all workers (`ocr:4,llm:16`); unset: no caps. Each claim
   * counts running jobs in the database, so every worker must be given the same value.
   */
  IX_USE_CASE_CONCURRENCY: optionalEnv(UseCaseCaps),
  /** Jobs claimed ahead of free slots (a local queue); raises throughput, see WorkerConfig.prefetch. */
  IX_WORKER_PREFETCH: envDefault(envVar.int(0, 10_000), D.prefetch),
  /** Pipeline timeout; the sweeper's horizon is twice this. */
  IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: envDefault(envVar.seconds(), D.pipelineTimeoutSeconds),
  /** Runs a job may have unless it or its pipeline's retry policy says otherwise: bounds retries and rescues of orphaned runs. */
  IX_MAX_ATTEMPTS: envDefault(envVar.int(1, 1000), D.maxAttempts),
  /** How often the sweeper runs (also once at start-up). */
  IX_SWEEP_INTERVAL_SECONDS: envDefault(envVar.seconds(), D.sweepIntervalSeconds),
  /** Comma-separated module paths or package names, each default-exporting a pipeline or an array of them. */
  IX_PIPELINE_MODULES: envDefault(envVar.list(), []),
  /** `whsec_` + base64 signing key for callbacks; unset sends them unsigned. */
  IX_CALLBACK_SECRET: optionalEnv(
    z.string().superRefine((value, ctx) => {
      const parsed = parseWebhookSecret(value.trim());
      if (!parsed.ok) ctx.addIssue({ code: "custom", message: parsed.error });
    }),
  ),
  /** Budget of one callback attempt: connect, headers and body. */
  IX_CALLBACK_TIMEOUT_SECONDS: envDefault(envVar.seconds(), D.callback.timeoutSeconds),
  /** Hosts, IP addresses and CIDRs that callbacks may reach although they are not public. */
  IX_CALLBACK_ALLOWED_HOSTS: envDefault(
    envVar.list().superRefine((entries, ctx) => {
      const parsed = parseAllowedHosts(entries);
      if (!parsed.ok) ctx.addIssue({ code: "custom", message: parsed.error });
    }),
    [],
  ),
  /** Delivery attempts before callback_status = failed. */
  IX_CALLBACK_MAX_ATTEMPTS: envDefault(envVar.int(1, 100), D.callback.maxAttempts),
  /** First retry delay ceiling; doubles per attempt (full jitter). */
  IX_CALLBACK_RETRY_BASE_SECONDS: envDefault(envVar.seconds(), D.callback.retryBaseSeconds),
  /** Upper bound of any one retry delay. */
  IX_CALLBACK_RETRY_MAX_SECONDS: envDefault(envVar.seconds(), D.callback.retryMaxSeconds),
  /** Fallback poll for pending jobs and due callbacks when no NOTIFY arrives. */
  IX_WORKER_POLL_INTERVAL_SECONDS: envDefault(envVar.seconds(), D.pollIntervalSeconds),
  /** On SIGTERM/SIGINT, how long in-flight jobs may take to finish before the process exits. */
  IX_SHUTDOWN_GRACE_SECONDS: envDefault(envVar.seconds(), D.shutdownGraceSeconds),
  /** pino level. */
  IX_LOG_LEVEL: envDefault(z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]), "info"),
  /** JSON lines, or readable lines (pretty); unset: pretty when stdout is a terminal. */
  IX_LOG_FORMAT: optionalEnv(z.enum(LOG_FORMATS)),
  /** Callback deliveries in flight at once to one host, per worker: a hanging receiver holds at most this many slots. */
  IX_CALLBACK_HOST_CONCURRENCY: envDefault(envVar.int(1, 1024), D.callback.hostConcurrency),
  /** Failing deliveries in a row (no answer, 5xx, 429) after which a host is paused. */
  IX_CALLBACK_BREAKER_FAILURES: envDefault(envVar.int(1, 1000), D.callback.breaker.failures),
  /** How long a paused host gets no deliveries (they spend no attempts meanwhile). */
  IX_CALLBACK_BREAKER_COOLDOWN_SECONDS: envDefault(envVar.seconds(), D.callback.breaker.cooldownSeconds),
  /** http(s):// egress proxy every callback goes through (CONNECT); unset sends directly. */
  IX_CALLBACK_PROXY_URL: optionalEnv(
    z.string().refine((value) => {
      if (!URL.canParse(value)) return false;
      const { protocol, hostname } = new URL(value);
      return (protocol === "http:" || protocol === "https:") && hostname !== "";
    }, "must be an http:// or https:// URL of the proxy"),
  ),
  /** `thread`: built-in and module pipelines run in worker threads that can be terminated; `inline`: on the worker's event loop. */
  IX_PIPELINE_ISOLATION: envDefault(z.enum(PIPELINE_ISOLATIONS), D.isolation),
  /** After a pipeline's timeout, how long it may take to honour its signal before its thread is terminated. */
  IX_PIPELINE_KILL_GRACE_SECONDS: envDefault(envVar.seconds(), D.killGraceSeconds),
  /** Largest serialized result (bytes of JSON) a pipeline may return; a larger one ends the job `error`. */
  IX_MAX_RESULT_BYTES: envDefault(envVar.int(1024, 256 * 1_048_576), D.maxResultBytes),
  /** How long a claimed run is leased; a run whose lease runs out unrenewed goes back to the rescuer. */
  IX_LEASE_SECONDS: envDefault(envVar.seconds(3600), D.leaseSeconds),
  /** Backoff ceiling before the first retry of a retryable failure; doubles per run (full jitter), unless the pipeline's policy says. */
  IX_RETRY_BASE_SECONDS: envDefault(envVar.seconds(), D.retryBaseSeconds),
  /** Upper bound of any one retry delay, retryAfterSeconds included, unless the pipeline's policy says. */
  IX_RETRY_MAX_SECONDS: envDefault(envVar.seconds(), D.retryMaxSeconds),
  /** After a cancel aborts a running pipeline's signal, how long it may take to stop before its thread is terminated. */
  IX_CANCEL_GRACE_SECONDS: envDefault(envVar.seconds(), D.cancelGraceSeconds),
  /** Serve this worker's Prometheus metrics on this port (GET /metrics); unset: not served. */
  IX_WORKER_METRICS_PORT: optionalEnv(envVar.int(1, 65_535)),
  /** Where the metrics endpoint binds; 0.0.0.0 (or the pod's address) to let a Prometheus on another host scrape it. */
  IX_WORKER_METRICS_HOST: envDefault(z.string().trim().min(1), "127.0.0.1"),
});
export type WorkerEnv = z.infer<typeof WorkerEnv>;

/** Parses the worker's variables; throws a ConfigError naming each bad one. */
export function parseWorkerEnv(env: Record<string, string | undefined>): WorkerEnv {
  return parseEnv(WorkerEnv, env);
}

/** The process environment, parsed: the only place this package reads process.env. */
export function readWorkerEnv(): WorkerEnv {
  return parseWorkerEnv(process.env);
}

/**
 * The traces exporter the standard OTEL_* variables ask for (docs/OPERATIONS.md,
 * "Traces"), null for none; the SDK reads the exporter's own settings itself.
 * Throws a ConfigError naming a variable that asks for what ix does not ship.
 */
export function parseTracesExporter(env: Record<string, string | undefined>): TracesExporter {
  const setting = tracesExporterFromEnv(env);
  if (!setting.ok) throw new ConfigError([{ variable: setting.variable, message: setting.message }]);
  return setting.exporter;
}

export function readTracesExporter(): TracesExporter {
  return parseTracesExporter(process.env);
}

export function workerConfigFromEnv(env: WorkerEnv): WorkerConfig {
  const secret = env.IX_CALLBACK_SECRET === undefined ? null : parseWebhookSecret(env.IX_CALLBACK_SECRET.trim());
  return {
    concurrency: env.IX_WORKER_CONCURRENCY,
    useCases: env.IX_WORKER_USE_CASES ?? null,
    useCaseConcurrency: env.IX_USE_CASE_CONCURRENCY ?? {},
    prefetch: env.IX_WORKER_PREFETCH,
    pipelineTimeoutSeconds: env.IX_PIPELINE_REQUEST_TIMEOUT_SECONDS,
    maxAttempts: env.IX_MAX_ATTEMPTS,
    sweepIntervalSeconds: env.IX_SWEEP_INTERVAL_SECONDS,
    pollIntervalSeconds: env.IX_WORKER_POLL_INTERVAL_SECONDS,
    poolMode: env.IX_POSTGRES_POOL_MODE,
    listenUrl: env.IX_LISTEN_URL ?? null,
    shutdownGraceSeconds: env.IX_SHUTDOWN_GRACE_SECONDS,
    leaseSeconds: env.IX_LEASE_SECONDS,
    socketTimeoutMs: env.IX_POSTGRES_SOCKET_TIMEOUT_MS,
    callback: {
      ...D.callback,
      secret: secret?.ok ? secret.key : null,
      timeoutSeconds: env.IX_CALLBACK_TIMEOUT_SECONDS,
      allowedHosts: env.IX_CALLBACK_ALLOWED_HOSTS,
      maxAttempts: env.IX_CALLBACK_MAX_ATTEMPTS,
      retryBaseSeconds: env.IX_CALLBACK_RETRY_BASE_SECONDS,
      retryMaxSeconds: env.IX_CALLBACK_RETRY_MAX_SECONDS,
      hostConcurrency: env.IX_CALLBACK_HOST_CONCURRENCY,
      breaker: { failures: env.IX_CALLBACK_BREAKER_FAILURES, cooldownSeconds: env.IX_CALLBACK_BREAKER_COOLDOWN_SECONDS },
      proxyUrl: env.IX_CALLBACK_PROXY_URL ?? null,
    },
    isolation: env.IX_PIPELINE_ISOLATION,
    killGraceSeconds: env.IX_PIPELINE_KILL_GRACE_SECONDS,
    maxResultBytes: env.IX_MAX_RESULT_BYTES,
    retryBaseSeconds: env.IX_RETRY_BASE_SECONDS,
    retryMaxSeconds: env.IX_RETRY_MAX_SECONDS,
    cancelGraceSeconds: env.IX_CANCEL_GRACE_SECONDS,
    metrics: env.IX_WORKER_METRICS_PORT === undefined ? null : { host: env.IX_WORKER_METRICS_HOST, port: env.IX_WORKER_METRICS_PORT },
  };
}
