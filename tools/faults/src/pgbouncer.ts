import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { access, chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@ix/provision";
import { waitForPostgresProtocol } from "./wait.ts";

/** Where Debian's `pgbouncer` package installs it (CI installs the package; see .ci/run). */
export const PGBOUNCER = "/usr/sbin/pgbouncer";

/** A real PgBouncer in transaction pooling mode in front of one PostgreSQL server. */
export interface PgBouncer {
  /** The upstream database's URL with PgBouncer's address instead of the server's. */
  readonly url: string;
  readonly port: number;
  /** Stops it (SIGTERM: PgBouncer closes every client and server connection at once) and waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port and configuration; resolves once it answers a query. */
  start(): Promise<void>;
  /** Stops it and removes its configuration. */
  close(): Promise<void>;
  /** What it logged (it logs to stderr), for failure messages. */
  log(): string;
}

/** A value in a libpq-style connection string (the `[databases]` entries), quoted. */
function quote(value: string): string {
  return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/**
 * Writes a configuration and userlist into a temporary directory and starts
 * `/usr/sbin/pgbouncer` on a free port, `pool_mode = transaction`, in front of
 * the server `upstreamUrl` names. Every database name is passed through to that
 * server, logging in as the URL's user. No startup parameter is ignored
 * (`ignore_startup_parameters` is empty): a client that sends one, as ix once
 * sent statement_timeout, is refused as it would be in production.
 * PgBouncer refuses to run as root, so under root it runs as `nobody`, which
 * every Debian machine has (a CI machine whose PostgreSQL is embedded may have no `postgres` user).
 */
export async function startPgBouncer(upstreamUrl: string, { poolSize = 20 }: { poolSize?: number } = {}): Promise<PgBouncer> {
  await access(PGBOUNCER).catch(() => {
    throw new Error(`PgBouncer is not installed at ${PGBOUNCER}: install the Debian package (apt-get install -y pgbouncer)`);
  });
  const upstream = new URL(upstreamUrl);
  const user = decodeURIComponent(upstream.username || "postgres");
  const password = decodeURIComponent(upstream.password);
  const dir = await mkdtemp(join(tmpdir(), "ix-pgbouncer-"));
  // As root PgBouncer runs as nobody, which must read the directory's files.
  await chmod(dir, 0o755);
  const port = await freePort();
  const server = [`host=${upstream.hostname.replace(/^\[|\]$/g, "")}`, `port=${upstream.port || "5432"}`, `user=${user}`];
  if (password) server.push(`password=${quote(password)}`);
  const ini = join(dir, "pgbouncer.ini");
  const userlist = join(dir, "userlist.txt");
  await writeFile(
    ini,
    [
      "[databases]",
      `* = ${server.join(" ")}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${userlist}`,
      "pool_mode = transaction",
      `default_pool_size = ${poolSize}`,
      "max_client_conn = 500",
      "ignore_startup_parameters =",
      // Quick to notice a server that went away, so tests of an outage do not wait on it.
      "server_connect_timeout = 5",
      "server_login_retry = 1",
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  // `trust`: no client password is checked, but the user must be listed.
  await writeFile(userlist, `"${user.replaceAll('"', '""')}" "${password.replaceAll('"', '""')}"\n`, { mode: 0o644 });

  const url = new URL(upstreamUrl);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  let child: ChildProcess | null = null;
  let log = "";

  async function start(): Promise<void> {
    if (child) throw new Error("PgBouncer is already running");
    const asRoot = process.getuid?.() === 0 ? ["-u", "nobody"] : [];
    const started = spawn(PGBOUNCER, [...asRoot, ini], { stdio: ["ignore", "pipe", "pipe"] });
    child = started;
    started.stdout?.on("data", (chunk: Buffer) => {
      log += chunk.toString("utf8");
    });
    started.stderr?.on("data", (chunk: Buffer) => {
      log += chunk.toString("utf8");
    });
    await waitForPostgresProtocol(`PgBouncer on port ${port}`, url.href, started, () => log, { timeoutMs: 10_000, intervalMs: 50 });
  }

  async function stop(): Promise<void> {
    const running = child;
    if (!running) return;
    child = null;
    if (running.exitCode !== null || running.signalCode !== null) return;
    const exited = once(running, "exit");
    running.kill("SIGTERM");
    const timer = setTimeout(() => running.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }

  try {
    await start();
  } catch (error) {
    await stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: url.href,
    port,
    stop,
    start,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
    log: () => log,
  };
}
