import { join } from "node:path";
import { type ApiEnv, apiConfigFromEnv, apiPoolOptionsFromEnv, parseApiEnv, startApi } from "@ix/api";
import { ConfigError } from "@ix/contracts";
import { createLogger, shutdownOnSignals, startTracing } from "@ix/process";
import { connect, logSerializers, migrateUp } from "@ix/store";
import { provisionPostgres, redactUrl } from "@ix/provision";
import {
  builtinPipelines,
  createWorker,
  loadPipelineModules,
  PipelineRegistry,
  parseTracesExporter,
  parseWorkerEnv,
  servedUseCases,
  workerConfigFromEnv,
  workerPoolOptions,
} from "@ix/worker";
import type { CliEnv } from "../env.ts";
import { recordInstance, stateDir } from "../instance.ts";
import { recoverStaleServer } from "../stale-postgres.ts";

/** Callbacks to loopback are refused in production (they would reach the worker's own host); local development needs them. */
const LOOPBACK = ["127.0.0.0/8", "::1/128", "localhost"];

/** Parses the API's and the worker's variables, reporting every bad one of both at once. */
function parseAll(env: Record<string, string | undefined>) {
  const problems: ConfigError["problems"] = [];
  const attempt = <T>(parse: () => T): T | undefined => {
    try {
      return parse();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems);
      return undefined;
    }
  };
  const apiEnv = attempt(() => parseApiEnv(env));
  const workerEnv = attempt(() => parseWorkerEnv(env));
  const tracesExporter = attempt(() => parseTracesExporter(env));
  // A variable both read (IX_CALLBACK_ALLOWED_HOSTS, IX_LOG_LEVEL, …) is reported once.
  const seen = new Set<string>();
  const unique = problems.filter(({ variable, message }) => !seen.has(`${variable}\n${message}`) && seen.add(`${variable}\n${message}`));
  if (!apiEnv || !workerEnv || tracesExporter === undefined) throw new ConfigError(unique);
  return [apiEnv, workerEnv, tracesExporter] as const;
}

/**
 * The whole service in one process for local use: embedded PostgreSQL
 * unless IX_POSTGRES_URL is set, migrations, the API and a worker.
 * Every variable is parsed before anything starts, so a bad value stops
 * start-up with a message naming it and leaves nothing running. Signals
 * are handled from the first moment, so one that comes during start-up
 * (a slow first initdb) stops what has started rather than killing the
 * process and orphaning PostgreSQL; what a killed run left behind is
 * recovered before PostgreSQL starts (stale-postgres.ts).
 */
export async function start(cliEnv: CliEnv, env: Record<string, string | undefined>): Promise<void> {
  const [apiEnv, workerEnv, tracesExporter] = parseAll(env);
  // Every record names its component: this command's own, the worker's and the API's.
  const root = createLogger({ level: apiEnv.IX_LOG_LEVEL, format: apiEnv.IX_LOG_FORMAT, serializers: logSerializers });
  const logger = root.child({ component: "cli" });
  // Pipelines load, and IX_WORKER_USE_CASES is checked against them, before PostgreSQL is started.
  const pipelines = new PipelineRegistry([...builtinPipelines(), ...(await loadPipelineModules(workerEnv.IX_PIPELINE_MODULES))]);
  const baseConfig = workerConfigFromEnv(workerEnv);
  servedUseCases(pipelines, baseConfig.useCases);

  const state = stateDir(env);
  const dataDir = cliEnv.IX_DATA_DIR ?? join(state, "pg");

  /** What start-up has started, stopped newest first; each stop is given the signal a second Ctrl-C aborts. */
  const stops: Array<(force: AbortSignal) => Promise<unknown>> = [];
  let shuttingDown = false;
  let force = new AbortController().signal;
  let stopping = Promise.resolve();
  /** Stops everything started so far; run again for what start-up started after a signal, queued behind the first run. */
  const stopAll = (forceSignal: AbortSignal) => {
    shuttingDown = true;
    stopping = stopping.then(async () => {
      for (let stop = stops.pop(); stop; stop = stops.pop()) {
        await stop(forceSignal).catch((error: unknown) => logger.error({ err: error }, "error while shutting down"));
      }
    });
    return stopping;
  };
  const signals = shutdownOnSignals((_signal, forceSignal) => {
    force = forceSignal;
    return stopAll(forceSignal);
  }, { log: logger });

  // Ctrl-C reaches the embedded PostgreSQL too (same process group), which then
  // closes our connections: expected during shutdown, so not worth a warning.
  const connectionLost = (which: string) => (err: Error) =>
    shuttingDown ? logger.debug({ err }, `${which} connection closed`) : logger.warn({ err }, `${which} connection lost`);

  /** Starts each part unless a signal has come meanwhile. */
  const startUp = async (): Promise<void> => {
    if (!cliEnv.IX_POSTGRES_URL) {
      await recoverStaleServer(dataDir, (message) => logger.warn(message));
      logger.info(`starting embedded PostgreSQL in ${dataDir} (the first start also initialises it)`);
    }
    const server = await provisionPostgres({
      url: cliEnv.IX_POSTGRES_URL,
      dataDir,
      persistent: true,
      port: cliEnv.IX_EMBEDDED_PG_PORT,
      log: (message) => logger.info(message),
    });
    stops.push(() => server.stop());
    if (shuttingDown) return;

    const apiDb = connect(server.url, { ...apiPoolOptionsFromEnv(apiEnv), onIdleError: connectionLost("api") });
    stops.push(() => apiDb.close());
    const applied = await migrateUp(apiDb);
    if (applied.length) logger.info({ applied }, "migrated");
    if (shuttingDown) return;

    // The one SDK of this process (the worker's runs are its spans); nothing is loaded without OTEL_* settings.
    const tracing = await startTracing({ serviceName: "ix", exporter: tracesExporter });
    if (tracing) stops.push(() => tracing.shutdown());
    if (shuttingDown) return;

    const workerDb = connect(server.url, { ...workerPoolOptions(baseConfig), onIdleError: connectionLost("worker") });
    stops.push(() => workerDb.close());
    const worker = createWorker({
      db: workerDb,
      pipelines,
      config: { ...baseConfig, callback: { ...baseConfig.callback, allowedHosts: [...baseConfig.callback.allowedHosts, ...LOOPBACK] } },
      logger: root.child({ component: "worker" }),
    });
    // The worker registers its use_cases as it starts; only then does the API listen, so a submission
    // right after the banner is never refused for a use_case no worker has registered yet.
    await worker.start();
    stops.push((forceSignal) => worker.stop({ force: forceSignal }));
    if (shuttingDown) return;

    // A standby for the API's listing reads, as under `ix api` (apps/api/src/reads.ts).
    const readUrl = apiEnv.IX_POSTGRES_READ_URL;
    const replica =
      readUrl === undefined
        ? undefined
        : connect(readUrl, { ...apiPoolOptionsFromEnv(apiEnv), applicationName: "ix-api-reads", onIdleError: connectionLost("read replica") });
    if (replica) stops.push(() => replica.close());
    const apiConfig = apiConfigFromEnv(apiEnv);
    const { app, url: base } = await startApi({
      db: apiDb,
      replica,
      // The API refuses loopback IP-literal callback URLs at submit unless allowed, like the worker.
      config: { ...apiConfig, callbackAllowedHosts: [...apiConfig.callbackAllowedHosts, ...LOOPBACK] },
      logger: root.child({ component: "api" }),
    });
    // Stopped before the worker: no new submissions while it drains.
    stops.push((forceSignal) => {
      const cutOff = () => app.server.closeAllConnections();
      if (forceSignal.aborted) cutOff();
      else forceSignal.addEventListener("abort", cutOff, { once: true });
      return app.close();
    });
    if (shuttingDown) return;

    // Removed first at a clean stop, so no command is sent to an instance that is going away.
    stops.push(
      await recordInstance(state, { pid: process.pid, apiUrl: base, postgresUrl: server.kind === "embedded" ? server.url : undefined }),
    );
    if (shuttingDown) return;
    process.stdout.write(banner(apiEnv, base, server.kind === "embedded" ? `${redactUrl(server.url)} (embedded, data in ${dataDir})` : redactUrl(server.url)));
  };

  try {
    await startUp();
  } catch (error) {
    if (!shuttingDown) {
      logger.info({ reason: "start-up failure" }, "shutting down");
      await stopAll(new AbortController().signal);
      signals.dispose();
      throw error;
    }
    // A step failing under the signal (Ctrl-C also reaches PostgreSQL) is part of stopping, not a start-up failure.
    logger.debug({ err: error }, "start-up cut short by a signal");
  }
  try {
    // After a signal during start-up, what was started after it is stopped too.
    if (shuttingDown) await stopAll(force);
    await signals.done;
  } finally {
    signals.dispose();
  }
}

/** What `ix start` prints once it serves. The key itself is never printed (terminals are logged and shared): the example reads it from the shell. */
function banner(apiEnv: ApiEnv, base: string, database: string): string {
  const firstKey = apiEnv.IX_API_KEYS[0];
  const auth = firstKey ? ` -H "authorization: Bearer $IX_API_KEY"` : "";
  const client = firstKey?.clientId ?? "demo";
  return [
    "",
    `ix is running`,
    `  API       ${base}`,
    `  docs      ${base}/docs`,
    `  dashboard ${base}/ui${apiEnv.IX_ADMIN_KEYS.length > 0 ? " (sign in with a key from IX_ADMIN_KEYS)" : apiEnv.IX_API_KEYS.length > 0 ? " (needs IX_ADMIN_KEYS to sign in)" : ""}`,
    `  database  ${database}`,
    "",
    "Submit a job:",
    ...(firstKey ? [`  (set IX_API_KEY to a key of client "${client}" from IX_API_KEYS; keys are not printed)`] : []),
    `  curl -s ${base}/jobs -H 'content-type: application/json'${auth} \\`,
    `    -d '{"use_case":"extract_fields","ix_client_id":"${client}","request_id":"hello-1","context":{"texts":["Invoice 42, total 10.00 EUR"]},"options":{"fields":{"total":"\\\\d+\\\\.\\\\d{2}"}}}'`,
    "",
    "Other ix commands run here (ix submit, ix get, ix migrate status, …) find this instance without variables.",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n");
}
