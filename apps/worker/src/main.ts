import { requirePostgresUrl } from "@ix/contracts";
import { createLogger, shutdownOnSignals, startTracing, type Tracing, type TracesExporter } from "@ix/process";
import { connect, logSerializers } from "@ix/store";
import type { Logger } from "pino";
import { workerPoolOptions } from "./config.ts";
import { type WorkerEnv, readTracesExporter, readWorkerEnv, workerConfigFromEnv } from "./env.ts";
import type { AnyPipeline } from "./pipeline.ts";
import { loadPipelineModules } from "./pipeline-modules.ts";
import { builtinPipelines } from "./pipelines/index.ts";
import { createWorker } from "./worker.ts";

export interface WorkerMainOptions {
  /** Already-parsed environment; read from the process when omitted. */
  env?: WorkerEnv;
  logger?: Logger;
  /** Pipelines registered in code, next to the built-in ones and IX_PIPELINE_MODULES. */
  pipelines?: AnyPipeline[];
  /** Where spans go (`parseTracesExporter`); read from the process's OTEL_* variables when omitted. */
  tracesExporter?: TracesExporter;
}

/**
 * `ix worker`: parse the environment once, connect, load pipelines, run a
 * worker until SIGTERM or SIGINT, then stop claiming, let in-flight jobs
 * finish within IX_SHUTDOWN_GRACE_SECONDS and resolve. A second signal ends
 * the grace period at once. The caller exits the process.
 */
export async function runWorkerMain(options: WorkerMainOptions = {}): Promise<void> {
  const env = options.env ?? readWorkerEnv();
  const log =
    options.logger ?? createLogger({ level: env.IX_LOG_LEVEL, format: env.IX_LOG_FORMAT, serializers: logSerializers }).child({ component: "worker" });
  const url = requirePostgresUrl(env.IX_POSTGRES_URL, "run a worker");
  const config = workerConfigFromEnv(env);
  const exporter = options.tracesExporter === undefined ? readTracesExporter() : options.tracesExporter;
  const pipelines = [...builtinPipelines(), ...(options.pipelines ?? []), ...(await loadPipelineModules(env.IX_PIPELINE_MODULES))];
  const db = connect(url, {
    ...workerPoolOptions(config),
    onIdleError: (error) => log.warn({ err: error }, "idle database connection lost; the pool opens a new one"),
  });
  let shutdown: ReturnType<typeof shutdownOnSignals> | undefined;
  let tracing: Tracing | null = null;
  try {
    // Registered before the first claim, so every run is a span; off (nothing loaded) without OTEL_* settings.
    tracing = await startTracing({ serviceName: "ix-worker", exporter });
    // Throws a ConfigError for an IX_WORKER_USE_CASES name without a pipeline, before anything starts.
    const worker = createWorker({ db, pipelines, config, logger: log });
    shutdown = shutdownOnSignals(async (_signal, force) => {
      await worker.stop({ force });
    }, { log });
    await worker.start();
    await shutdown.done;
  } finally {
    shutdown?.dispose();
    await db.close().catch((error: unknown) => log.warn({ err: error }, "closing the database pool"));
    await tracing?.shutdown().catch((error: unknown) => log.warn({ err: error }, "exporting the last spans"));
  }
}
