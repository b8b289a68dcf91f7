import { join } from "node:path";
import { apiConfigFromEnv, apiPoolOptionsFromEnv, parseApiEnv, startApi } from "@ix/api";
import { ConfigError } from "@ix/contracts";
import { createLogger, shutdownOnSignals } from "@ix/process";
import { connect, logSerializers, migrateUp } from "@ix/store";
import { provisionPostgres, redactUrl } from "@ix/store/provision";
import {
  builtinPipelines,
  createWorker,
  loadPipelineModules,
  PipelineRegistry,
  parseWorkerEnv,
  servedUseCases,
  workerConfigFromEnv,
  workerPoolOptions,
} from "@ix/worker";
import type { CliEnv } from "../env";
import { REPOSITORY_ROOT } from "../repository";

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
  // A variable both read (IX_CALLBACK_ALLOWED_HOSTS, IX_LOG_LEVEL, …) is reported once.
  const seen = new Set<string>();
  const unique = problems.filter(({ variable, message }) => !seen.has(`${variable}\n${message}`) && seen.add(`${variable}\n${message}`));
  if (!apiEnv || !workerEnv) throw new ConfigError(unique);
  return [apiEnv, workerEnv] as const;
}

/**
 * The whole service in one process for local use: embedded PostgreSQL
 * unless IX_POSTGRES_URL is set, migrations, the API and a worker.
 * Every variable is parsed before anything starts, so a bad value stops
 * start-up with a message naming it and leaves nothing running.
 */
export async function start(cliEnv: CliEnv, env: Record<string, string | undefined>): Promise<void> {
  const [apiEnv, workerEnv] = parseAll(env);
  // Every record names its component: this command's own, the worker's and the API's.
  const root = createLogger({ level: apiEnv.IX_LOG_LEVEL, format: apiEnv.IX_LOG_FORMAT, serializers: logSerializers });
  const logger = root.child({ component: "cli" });
  // Pipelines load, and IX_WORKER_USE_CASES is checked against them, before PostgreSQL is started.
  const pipelines = new PipelineRegistry([...builtinPipelines(), ...(await loadPipelineModules(workerEnv.IX_PIPELINE_MODULES))]);
  const baseConfig = workerConfigFromEnv(workerEnv);
  servedUseCases(pipelines, baseConfig.useCases);

  const dataDir = cliEnv.IX_DATA_DIR ?? join(REPOSITORY_ROOT, ".ix", "pg");
  const server = await provisionPostgres({
    url: cliEnv.IX_POSTGRES_URL,
    dataDir,
    persistent: true,
    port: cliEnv.IX_EMBEDDED_PG_PORT,
    log: (message) => logger.info(message),
  });
  /** Each stop is given the signal a second Ctrl-C aborts: stop waiting for in-flight work. */
  const stops: Array<(force: AbortSignal) => Promise<unknown>> = [() => server.stop()];
  // Ctrl-C reaches the embedded PostgreSQL too (same process group), which then
  // closes our connections: expected during shutdown, so not worth a warning.
  let shuttingDown = false;
  const connectionLost = (which: string) => (err: Error) =>
    shuttingDown ? logger.debug({ err }, `${which} connection closed`) : logger.warn({ err }, `${which} connection lost`);
  const shutdown = async (force: AbortSignal) => {
    shuttingDown = true;
    // Reverse order: worker and API first, the database last.
    for (const stop of stops.reverse()) {
      await stop(force).catch((error: unknown) => logger.error({ err: error }, "error while shutting down"));
    }
  };
  try {
    const apiDb = connect(server.url, { ...apiPoolOptionsFromEnv(apiEnv), onIdleError: connectionLost("api") });
    stops.push(() => apiDb.close());
    const applied = await migrateUp(apiDb);
    if (applied.length) logger.info({ applied }, "migrated");

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
    stops.push((force) => worker.stop({ force }));

    const apiConfig = apiConfigFromEnv(apiEnv);
    const { app, url: base } = await startApi({
      db: apiDb,
      // The API refuses loopback IP-literal callback URLs at submit unless allowed, like the worker.
      config: { ...apiConfig, callbackAllowedHosts: [...apiConfig.callbackAllowedHosts, ...LOOPBACK] },
      logger: root.child({ component: "api" }),
    });
    // Stopped first (stops run in reverse): no new submissions while the worker drains.
    stops.push((force) => {
      const cutOff = () => app.server.closeAllConnections();
      if (force.aborted) cutOff();
      else force.addEventListener("abort", cutOff, { once: true });
      return app.close();
    });

    // The key itself is never printed (terminals are logged and shared): the example reads it from the shell.
    const firstKey = apiEnv.IX_API_KEYS[0];
    const auth = firstKey ? ` -H "authorization: Bearer $IX_API_KEY"` : "";
    const client = firstKey?.clientId ?? "demo";
    process.stdout.write(
      [
        "",
        `ix is running`,
        `  API       ${base}`,
        `  docs      ${base}/docs`,
        `  database  ${redactUrl(server.url)}${server.kind === "embedded" ? ` (embedded, data in ${dataDir})` : ""}`,
        "",
        "Submit a job:",
        ...(firstKey ? [`  (set IX_API_KEY to a key of client "${client}" from IX_API_KEYS; keys are not printed)`] : []),
        `  curl -s ${base}/jobs -H 'content-type: application/json'${auth} \\`,
        `    -d '{"use_case":"extract_fields","ix_client_id":"${client}","request_id":"hello-1","context":{"texts":["Invoice 42, total 10.00 EUR"]},"options":{"fields":{"total":"\\\\d+\\\\.\\\\d{2}"}}}'`,
        "",
        "Press Ctrl-C to stop.",
        "",
      ].join("\n"),
    );
  } catch (error) {
    logger.info({ reason: "start-up failure" }, "shutting down");
    await shutdown(new AbortController().signal);
    throw error;
  }

  const signals = shutdownOnSignals((_signal, force) => shutdown(force), { log: logger });
  try {
    await signals.done;
  } finally {
    signals.dispose();
  }
}
