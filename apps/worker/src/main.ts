import { ConfigError } from "@ix/contracts";
import { connect } from "@ix/store";
import { type Logger, pino } from "pino";
import { workerPoolOptions } from "./config";
import { type WorkerEnv, readWorkerEnv, workerConfigFromEnv } from "./env";
import type { AnyPipeline } from "./pipeline";
import { loadPipelineModules } from "./pipeline-modules";
import { builtinPipelines } from "./pipelines";
import { createWorker } from "./worker";

export interface WorkerMainOptions {
  /** Already-parsed environment; read from the process when omitted. */
  env?: WorkerEnv;
  logger?: Logger;
  /** Pipelines registered in code, next to the built-in ones and IX_PIPELINE_MODULES. */
  pipelines?: AnyPipeline[];
}

/**
 * `ix worker` (spec §7): parse the environment once, connect, load pipelines,
 * run a worker until SIGTERM or SIGINT, then stop claiming, let in-flight
 * jobs finish within IX_SHUTDOWN_GRACE_SECONDS and resolve. A second signal
 * skips the grace period. The caller exits the process.
 */
export async function runWorkerMain(options: WorkerMainOptions = {}): Promise<void> {
  const env = options.env ?? readWorkerEnv();
  const log = options.logger ?? pino({ level: env.IX_LOG_LEVEL, name: "ix-worker" });
  if (env.IX_POSTGRES_URL === undefined) {
    throw new ConfigError([{ variable: "IX_POSTGRES_URL", message: "is required to run a worker" }]);
  }
  const config = workerConfigFromEnv(env);
  const pipelines = [...builtinPipelines(), ...(options.pipelines ?? []), ...(await loadPipelineModules(env.IX_PIPELINE_MODULES))];
  const db = connect(env.IX_POSTGRES_URL, {
    ...workerPoolOptions(config),
    onIdleError: (error) => log.warn({ err: error }, "idle database connection lost; the pool opens a new one"),
  });
  const worker = createWorker({ db, pipelines, config, logger: log });

  let signalled: () => void = () => {};
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
    let count = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      count++;
      if (count === 1) resolve(signal);
      else {
        log.warn({ signal }, "second signal: exiting without waiting for in-flight jobs");
        signalled();
      }
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  try {
    await worker.start();
    const signal = await stopRequested;
    log.info({ signal }, "shutdown requested");
    const impatient = new Promise<void>((resolve) => {
      signalled = resolve;
    });
    await Promise.race([worker.stop(), impatient]);
  } finally {
    await db.close().catch((error: unknown) => log.warn({ err: error }, "closing the database pool"));
  }
}
