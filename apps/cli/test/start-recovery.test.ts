import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@ix/provision";
import { waitFor } from "@ix/testing";
import { describe, expect, it } from "vitest";
import { exited, runIx, spawnIx, spawnIxInTerminal, waitForOutput } from "./run-ix.ts";

// ix start survives being killed: what a killed run leaves (an embedded PostgreSQL still running, a lock
// file) is recovered at the next start, a closed terminal (SIGHUP) stops everything cleanly, and the other
// commands find the running instance through its record. Real processes and real signals throughout.

const BANNER = "Press Ctrl-C to stop.";
const REQUEST = JSON.stringify({
  use_case: "extract_fields",
  ix_client_id: "demo",
  request_id: "recover-1",
  context: { texts: ["Invoice 42, total 10.00 EUR"] },
  options: { fields: { total: "\\d+\\.\\d{2}" } },
});

/** Processes running out of `dataDir` (an embedded PostgreSQL and its backends). */
function processesUsing(dataDir: string): string[] {
  try {
    return execFileSync("pgrep", ["-af", dataDir], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** A directory for one test: state (instance.json) at its top, embedded data in pg/. */
async function workspace() {
  const dir = await mkdtemp(join(tmpdir(), "ix-recover-"));
  // mkdtemp makes it 0700; as root, embedded PostgreSQL runs as the postgres user, who must get in.
  await chmod(dir, 0o755);
  const port = await freePort();
  return {
    dir,
    dataDir: join(dir, "pg"),
    record: join(dir, "instance.json"),
    port,
    // No IX_API_URL and no IX_POSTGRES_URL: the commands must find the instance themselves.
    env: { IX_STATE_DIR: dir, IX_API_PORT: String(port), IX_LOG_LEVEL: "warn" },
  };
}

async function startIx(env: Record<string, string>): Promise<{ ix: ChildProcess; output: string }> {
  const ix = spawnIx(["start"], env);
  let output = "";
  ix.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  ix.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  await waitForOutput(ix, BANNER, 120_000);
  return {
    ix,
    get output() {
      return output;
    },
  };
}

async function postmasterPid(dataDir: string): Promise<number> {
  return Number((await readFile(join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
}

describe("ix start after a kill", () => {
  it("records itself for the other commands; after kill -9 the orphaned PostgreSQL is stopped at the next start, which serves; SIGHUP stops it all", async () => {
    const w = await workspace();
    try {
      const first = await startIx(w.env);
      // The record: this process, its API and its embedded database, readable by the user only.
      const record = JSON.parse(await readFile(w.record, "utf8")) as { pid: number; apiUrl: string; postgresUrl: string };
      expect(record).toMatchObject({ pid: first.ix.pid, apiUrl: `http://127.0.0.1:${w.port}` });
      expect(record.postgresUrl).toMatch(/^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/postgres$/);
      expect((await stat(w.record)).mode & 0o777).toBe(0o600);

      // Without a variable, ix migrate status and ix submit / get reach it.
      const status = await runIx(["migrate", "status"], w.env);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toContain("schema is current");
      const submitted = await runIx(["submit", "-"], w.env, REQUEST);
      expect(submitted.code, submitted.stderr).toBe(0);
      const jobId = (JSON.parse(submitted.stdout) as { job_id: string }).job_id;
      const waited = await runIx(["get", jobId, "--wait", "--interval", "100ms"], w.env);
      expect(waited.code, waited.stderr).toBe(0);
      // A variable that is set wins over the record.
      const elsewhere = await runIx(["get", jobId], { ...w.env, IX_API_URL: "http://127.0.0.1:1" });
      expect(elsewhere.code).toBe(1);
      expect(elsewhere.stderr).toContain("http://127.0.0.1:1");

      // kill -9: no chance to clean up. The embedded server lives on, holding the lock.
      const orphan = await postmasterPid(w.dataDir);
      first.ix.kill("SIGKILL");
      expect(await exited(first.ix)).toBeNull();
      expect(processesUsing(w.dataDir).length).toBeGreaterThan(0);

      // The record now names a dead process: ignored, with a message, so the command needs its variable again.
      const stale = await runIx(["migrate", "status"], w.env);
      expect(stale.code).toBe(2);
      expect(stale.stderr).toContain(`ignoring ${w.record}: the ix start that wrote it (pid ${first.ix.pid}) is no longer running`);
      expect(stale.stderr).toContain("IX_POSTGRES_URL");

      // The next start stops the orphan, says so in one line, and serves the same data.
      const second = await startIx(w.env);
      const said = second.output.split("\n").filter((line) => line.includes("earlier ix start"));
      expect(said).toHaveLength(1);
      expect(said[0]).toContain(`stopped embedded PostgreSQL (pid ${orphan}) that an earlier ix start left running in ${w.dataDir}`);
      expect(processesUsing(w.dataDir).some((line) => line.startsWith(`${orphan} `))).toBe(false);
      const kept = await runIx(["get", jobId], w.env);
      expect(kept.code, kept.stderr).toBe(0);
      expect((JSON.parse(kept.stdout) as { status: string }).status).toBe("done");
      expect((JSON.parse(await readFile(w.record, "utf8")) as { pid: number }).pid).toBe(second.ix.pid);

      // SIGHUP (the terminal closed): a clean stop, exit 0, no PostgreSQL left, the record removed.
      second.ix.kill("SIGHUP");
      expect(await exited(second.ix)).toBe(0);
      expect(processesUsing(w.dataDir)).toEqual([]);
      expect(existsSync(w.record)).toBe(false);
      expect(existsSync(join(w.dataDir, "postmaster.pid"))).toBe(false);
    } finally {
      await rm(w.dir, { recursive: true, force: true });
    }
  });

  it("clears a lock whose process is gone, or whose pid now belongs to another program, saying which", async () => {
    const w = await workspace();
    try {
      // A data directory to lock: made by a start that stopped cleanly.
      const made = await startIx(w.env);
      made.ix.kill("SIGINT");
      expect(await exited(made.ix)).toBe(0);
      const lock = join(w.dataDir, "postmaster.pid");
      const fakeLock = (pid: number) => writeFile(lock, `${pid}\n${w.dataDir}\n1700000000\n5432\n/tmp\n127.0.0.1\n  1234   5678\nready   \n`);

      // After a reboot or in a container, the pid in the lock is often another, live program's:
      // PostgreSQL alone refuses to start over it ("Is another postmaster running?").
      // As root, PostgreSQL runs as the postgres user: the stranger must be that user's for PostgreSQL to see it alive.
      const stranger = spawn("sleep", ["300"], process.getuid?.() === 0 ? postgresUser() : {});
      try {
        await fakeLock(stranger.pid!);
        const reused = await startIx(w.env);
        expect(reused.output).toContain(`removed a stale PostgreSQL lock (${lock}): process ${stranger.pid} is not a PostgreSQL server for this data directory`);
        expect(stranger.exitCode).toBeNull(); // the other program is left alone
        reused.ix.kill("SIGINT");
        expect(await exited(reused.ix)).toBe(0);
      } finally {
        stranger.kill();
      }

      // A pid that is gone.
      const gone = spawn("true");
      await exited(gone);
      await fakeLock(gone.pid!);
      const dead = await startIx(w.env);
      expect(dead.output).toContain(`removed a stale PostgreSQL lock (${lock}): its process ${gone.pid} is gone`);
      const status = await runIx(["migrate", "status"], w.env);
      expect(status.code, status.stderr).toBe(0);
      dead.ix.kill("SIGINT");
      expect(await exited(dead.ix)).toBe(0);
      expect(processesUsing(w.dataDir)).toEqual([]);
    } finally {
      await rm(w.dir, { recursive: true, force: true });
    }
  });

  it("refuses, naming it, to take over an embedded PostgreSQL that a running ix owns", async () => {
    const w = await workspace();
    try {
      const running = await startIx(w.env);
      try {
        const other = await runIx(["start"], { ...w.env, IX_API_PORT: String(await freePort()) });
        expect(other.code).toBe(1);
        expect(other.stderr).toContain(`belongs to a running ix (pid ${running.ix.pid})`);
        // The running one is unharmed and still serves.
        const status = await runIx(["migrate", "status"], w.env);
        expect(status.code, status.stderr).toBe(0);
      } finally {
        running.ix.kill("SIGINT");
      }
      expect(await exited(running.ix)).toBe(0);
      expect(processesUsing(w.dataDir)).toEqual([]);
    } finally {
      await rm(w.dir, { recursive: true, force: true });
    }
  });
});

describe("ix start stopped while it starts", () => {
  it("a signal during the first initialisation stops what has started: exit 0, no PostgreSQL left", async () => {
    const w = await workspace();
    try {
      const ix = spawnIx(["start"], { ...w.env, IX_LOG_LEVEL: "info" });
      await waitForOutput(ix, "starting embedded PostgreSQL", 60_000);
      ix.kill("SIGTERM"); // initdb (or the server's start) is under way
      expect(await exited(ix)).toBe(0);
      expect(processesUsing(w.dataDir)).toEqual([]);
      expect(existsSync(w.record)).toBe(false);
    } finally {
      await rm(w.dir, { recursive: true, force: true });
    }
  });
});

describe("ix start in a terminal", () => {
  const haveScript = (() => {
    try {
      execFileSync("script", ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!haveScript)("logs readable lines, and when the terminal closes it stops cleanly: no PostgreSQL left, the record removed", async () => {
    const w = await workspace();
    try {
      const { terminal, output } = spawnIxInTerminal(["start"], { ...w.env, IX_LOG_LEVEL: "info" });
      await waitFor("ix start to serve", () => output().includes(BANNER), { timeoutMs: 120_000, intervalMs: 100 });
      // A terminal gets readable lines, in colour, not JSON.
      expect(output()).toContain("\x1b[32mINFO \x1b[0m [cli] started embedded PostgreSQL");
      expect(output()).not.toMatch(/^\{"level"/m);
      const { pid } = JSON.parse(await readFile(w.record, "utf8")) as { pid: number };

      // Closing the terminal: the pty's other end goes away, and the kernel hangs up the session (SIGHUP).
      terminal.kill("SIGKILL");
      await waitFor("ix start to exit", () => !isAlive(pid), { timeoutMs: 60_000, intervalMs: 100 });
      // Only a clean stop removes the record; writing to the closed terminal did not get in its way.
      expect(existsSync(w.record)).toBe(false);
      expect(processesUsing(w.dataDir)).toEqual([]);
    } finally {
      await rm(w.dir, { recursive: true, force: true });
    }
  });
});

/** The uid and gid of the postgres system user, which embedded PostgreSQL runs as under root. */
function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
