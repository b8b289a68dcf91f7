import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { appendFile, chmod, mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { waitForPostgresProtocol } from "../wait.ts";

const exec = promisify(execFile);

/** The machine's PostgreSQL 15 (Debian's postgresql-15), which CI installs. */
export const PG_BIN = "/usr/lib/postgresql/15/bin";

/** A PostgreSQL cluster of the run's own, listening on the bridge address so every host can reach it. */
export interface PostgresHost {
  /** postgres://postgres@<gateway>:5432/postgres */
  readonly url: string;
  readonly dataDir: string;
  /** The postmaster's pid (a process of the root namespace). */
  readonly pid: number;
  log(): string;
  /** Immediate shutdown (SIGQUIT), then SIGKILL if it lingers; removes nothing. */
  stop(): Promise<void>;
}

/** The server's own process runs as `postgres`: PostgreSQL refuses root. */
function asPostgres(command: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args];
}

/**
 * initdb in `<runDir>/pg` and starts `postgres` from PG_BIN listening only on
 * `address` (port 5432: the address is the run's own, so the port is free),
 * trusting connections from `subnet`. Durability is off (fsync, full page
 * writes): the cluster lives for one test. Fails naming the package when the
 * binaries are missing.
 */
export async function startPostgresHost({ runDir, address, subnet }: { runDir: string; address: string; subnet: string }): Promise<PostgresHost> {
  const initdb = join(PG_BIN, "initdb");
  await readFile(initdb).catch(() => {
    throw new Error(`PostgreSQL 15 is not installed at ${PG_BIN}: install the Debian package postgresql-15`);
  });
  const dataDir = join(runDir, "pg");
  await mkdir(dataDir, { mode: 0o700 });
  if (process.getuid?.() === 0) await exec("chown", ["postgres:postgres", dataDir]);
  await chmod(runDir, 0o755);
  const [cmd, args] = asPostgres(initdb, ["-D", dataDir, "-U", "postgres", "--auth=trust", "--no-sync", "--no-instructions"]);
  try {
    await exec(cmd, args, { timeout: 60_000 });
  } catch (error) {
    throw new Error(`initdb failed: ${(error as { stderr?: string }).stderr ?? error}`, { cause: error });
  }
  await appendFile(join(dataDir, "pg_hba.conf"), `host all all ${subnet} trust\n`);
  const [pgCmd, pgArgs] = asPostgres(join(PG_BIN, "postgres"), [
    "-D", dataDir,
    "-c", `listen_addresses=${address}`,
    "-c", "port=5432",
    "-c", "unix_socket_directories=",
    "-c", "max_connections=300",
    "-c", "fsync=off",
    "-c", "full_page_writes=off",
    "-c", "synchronous_commit=off",
  ]);
  // runuser execs nothing: it forks and waits, so the postmaster is its child; the pid recorded is the postmaster's.
  const child: ChildProcess = spawn(pgCmd, pgArgs, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    log += chunk.toString("utf8");
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    log += chunk.toString("utf8");
  });
  const url = `postgres://postgres@${address}:5432/postgres`;
  const stop = async () => {
    const pid = await postmasterPid(dataDir);
    if (pid !== null) {
      try {
        process.kill(pid, "SIGQUIT");
      } catch {
        // Gone already.
      }
    }
    if (child.exitCode === null && child.signalCode === null) {
      const timer = setTimeout(() => {
        if (pid !== null) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // Gone already.
          }
        }
        child.kill("SIGKILL");
      }, 5_000);
      await once(child, "exit");
      clearTimeout(timer);
    }
  };
  try {
    await waitForPostgresProtocol(`PostgreSQL at ${address}:5432`, url, child, () => log, { timeoutMs: 30_000, intervalMs: 100 });
  } catch (error) {
    await stop();
    throw error;
  }
  const pid = (await postmasterPid(dataDir)) ?? child.pid ?? -1;
  return { url, dataDir, pid, log: () => log, stop };
}

/** The first line of postmaster.pid, or null when the server is not running. */
async function postmasterPid(dataDir: string): Promise<number | null> {
  const text = await readFile(join(dataDir, "postmaster.pid"), "utf8").catch(() => null);
  const pid = Number(text?.split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** For the sweep of a stale run: stops the postmaster a killed run left in its directory (immediate shutdown), then the directory goes. */
export async function killStalePostgres(runDir: string): Promise<void> {
  const pid = await postmasterPid(join(runDir, "pg"));
  if (pid === null) return;
  try {
    process.kill(pid, "SIGQUIT");
  } catch {
    // Gone already.
  }
  await rm(join(runDir, "pg"), { recursive: true, force: true });
}
