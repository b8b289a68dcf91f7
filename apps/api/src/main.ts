import { requirePostgresUrl } from "@ix/contracts";
import { createLogger, shutdownOnSignals } from "@ix/process";
import { connect, logSerializers, migrationStatus, redactUrl, unreachableDatabase, type Database } from "@ix/store";
import type { Logger } from "pino";
import { buildApp, type ApiApp } from "./app.ts";
import { assertSafeBind, type ApiConfig } from "./config.ts";
import { apiConfigFromEnv, apiPoolOptionsFromEnv, loadApiEnv, type ApiEnv } from "./env.ts";

export interface StartedApi {
  app: ApiApp;
  /** Where it listens, e.g. http://127.0.0.1:8080. */
  url: string;
}

/**
 * Builds the API and binds it. Refuses, before binding, to serve without keys
 * on a non-loopback address (anyone who can reach it could submit and read
 * jobs), so every entry point (`ix api`, `ix start`, embedding code) gets the
 * same guard.
 */
export async function startApi(options: { db: Database; replica?: Database | undefined; config: ApiConfig; logger?: Logger }): Promise<StartedApi> {
  assertSafeBind(options.config);
  const app = await buildApp(options);
  const url = await app.listen({ host: options.config.host, port: options.config.port });
  return { app, url };
}

export interface RunningApi extends StartedApi {
  /** Stops accepting connections, lets in-flight requests finish, closes the pool. Idempotent. */
  close(): Promise<void>;
}

/**
 * `ix api`: the production entry point. Parses the environment once, connects
 * (it does not migrate), listens, and on SIGTERM or SIGINT stops accepting
 * connections and lets in-flight requests finish; a second signal cuts them off.
 */
export async function runApiMain(options: { env?: ApiEnv; logger?: Logger } = {}): Promise<RunningApi> {
  const env = options.env ?? loadApiEnv();
  const config = apiConfigFromEnv(env);
  const url = requirePostgresUrl(env.IX_POSTGRES_URL, "run ix api");
  assertSafeBind(config);
  const logger =
    options.logger ?? createLogger({ level: env.IX_LOG_LEVEL, format: env.IX_LOG_FORMAT, serializers: logSerializers }).child({ component: "api" });

  const db = connect(url, {
    ...apiPoolOptionsFromEnv(env),
    onIdleError: (error) => logger.warn({ err: error }, "idle database connection lost; the next request reconnects"),
  });
  // Its own pool of the same size: the replica's reads never wait for the primary's connections, nor these for them.
  const replica =
    env.IX_POSTGRES_READ_URL === undefined
      ? undefined
      : connect(env.IX_POSTGRES_READ_URL, {
          ...apiPoolOptionsFromEnv(env),
          applicationName: "ix-api-reads",
          onIdleError: (error) => logger.warn({ err: error }, "idle read replica connection lost; the next request reconnects"),
        });
  const closePools = async () => {
    await Promise.all([db.close(), replica?.close()]);
  };
  try {
    const status = await migrationStatus(db);
    if (!status.current) {
      logger.error({ pending: status.pending, modified: status.modified, unknown: status.unknown },
        "database schema is not current; /readyz answers 503 until `ix migrate up` runs");
    }
  } catch (error) {
    // Serving anyway: /readyz reports it, and requests answer 503 until the database is back.
    const unreachable = unreachableDatabase(error);
    logger.error(
      { err: error, database: redactUrl(url) },
      unreachable ? `${unreachable.message} at start-up; serving anyway` : "checking the database schema at start-up failed",
    );
  }

  let started: StartedApi;
  try {
    started = await startApi({ db, replica, config, logger });
  } catch (error) {
    await closePools();
    throw new Error(`ix api could not listen on ${config.host}:${config.port}`, { cause: error });
  }

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      try {
        await started.app.close();
        await closePools();
        logger.info("ix api stopped");
      } finally {
        signals.dispose();
      }
    })();
    return closing;
  };
  const signals = shutdownOnSignals(async (_signal, force) => {
    force.addEventListener("abort", () => started.app.server.closeAllConnections(), { once: true });
    await close().catch((error: unknown) => {
      logger.error({ err: error }, "shutdown failed");
      process.exitCode = 1;
    });
  }, { log: logger });
  // Only once a signal is handled: whoever waits for this line may stop the API right after it.
  logger.info(
    {
      url: started.url,
      auth: config.apiKeys.length > 0,
      ...(env.IX_POSTGRES_READ_URL === undefined ? {} : { readReplica: redactUrl(env.IX_POSTGRES_READ_URL) }),
    },
    "ix api listening",
  );
  return { ...started, close };
}
