import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Job, RequestIX } from "@ix/contracts";
import { type Database, type Executor, jobs } from "@ix/store";
import { describe, expect, test } from "@ix/testing";
import { listeningWorkers } from "../src/activity.ts";
import { printFigures } from "../src/figures.ts";
import type { Heartbeat } from "../src/hostile-pipelines.ts";
import { type IxProcess, killAll, spawnIx } from "../src/processes.ts";
import { createRunsTable, listRuns, type RunRow } from "../src/runs.ts";
import { waitFor } from "../src/wait.ts";

const HOSTILE_MODULE = fileURLToPath(new URL("../src/hostile-pipelines.ts", import.meta.url));

function request(requestId: string, overrides: Partial<RequestIX> = {}): RequestIX {
  return { use_case: "recorded", ix_client_id: "control", request_id: requestId, context: { texts: ["t"] }, options: { ms: 50 }, ...overrides };
}

async function insert(db: Executor, requestId: string, overrides: Partial<RequestIX> = {}): Promise<Job> {
  return (await jobs.insertPending(db, { request: request(requestId, overrides), callbackUrl: null })).job;
}

async function ended(db: Database, job: Job, timeoutMs = 60_000): Promise<Job> {
  return waitFor(
    `job ${job.request.request_id} to end`,
    async () => {
      const current = await jobs.get(db, job.job_id);
      return current && ["done", "error", "cancelled"].includes(current.status) ? current : undefined;
    },
    { timeoutMs },
  );
}

/** No job ever had two live runs: each run of a job started after the one before it ended or its process was killed. */
function assertOneLiveRunAtATime(runs: RunRow[], killed: Set<number>): void {
  const byJob = new Map<string, RunRow[]>();
  for (const run of runs) byJob.set(run.jobId, [...(byJob.get(run.jobId) ?? []), run]);
  for (const [, list] of byJob) {
    for (const [i, run] of list.entries()) {
      if (i === list.length - 1) break;
      // An unfinished run that is not the job's last is only allowed for a killed process: it cannot still be running.
      if (!run.finished) expect(killed.has(run.pid), `run ${i} of ${run.jobId} never ended, yet its process lives`).toBe(true);
    }
  }
}

const base = (url: string) => ({
  IX_POSTGRES_URL: url,
  IX_WORKER_CONCURRENCY: "2",
  IX_WORKER_POLL_INTERVAL_SECONDS: "0.2",
  // info: the process's "worker starting" line tells stop() it handles SIGTERM (src/processes.ts).
  IX_LOG_LEVEL: "info",
});

describe("job control with real worker processes", () => {
  test("SIGKILL a worker mid-run: its jobs run again within IX_LEASE_SECONDS + IX_SWEEP_INTERVAL_SECONDS", { timeout: 120_000 }, async ({
    database: { db, url },
  }) => {
    await createRunsTable(db);
    const leaseSeconds = 3;
    const sweepSeconds = 1;
    // The rescue horizon (2 × timeout) is far away: only the lease can bring the jobs back.
    const env = { ...base(url), IX_LEASE_SECONDS: String(leaseSeconds), IX_SWEEP_INTERVAL_SECONDS: String(sweepSeconds), IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "60" };
    const processes: IxProcess[] = [];
    try {
      const doomed = spawnIx("worker", env);
      processes.push(doomed);
      await waitFor("the first worker to listen", async () => (await listeningWorkers(db)) === 1, { timeoutMs: 60_000 });
      const long = [await insert(db, "killed-1", { options: { ms: 50, first_ms: 30_000 } }), await insert(db, "killed-2", { options: { ms: 50, first_ms: 30_000 } })];
      await waitFor("both runs to start in the first worker", async () => (await listRuns(db)).filter((r) => r.pid === doomed.pid).length === 2, { intervalMs: 5 });
      const survivor = spawnIx("worker", env);
      processes.push(survivor);
      await waitFor("the survivor to listen", async () => (await listeningWorkers(db)) === 2, { timeoutMs: 60_000 });
      // Held by the live first worker: renewed, never rescued.
      expect((await listRuns(db)).filter((r) => r.attempt === 1)).toEqual([]);

      doomed.child.kill("SIGKILL");
      const killedAt = Date.now();
      const reruns = await waitFor(
        "both jobs to run again in the survivor",
        async () => {
          const again = (await listRuns(db)).filter((r) => r.pid === survivor.pid && r.attempt === 1);
          return again.length === 2 ? Date.now() : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 10 },
      );
      const againMs = reruns - killedAt;
      for (const job of long) expect(await ended(db, job)).toMatchObject({ status: "done", attempts: 1, response: { result: { pid: survivor.pid, attempt: 1 } } });
      // The bound, with a second of slack for process and database scheduling on a shared 2-core machine.
      expect(againMs).toBeLessThan((leaseSeconds + sweepSeconds + 1) * 1000);
      assertOneLiveRunAtATime(await listRuns(db), new Set([doomed.pid]));
      printFigures("job-control-sigkill", {
        lease_seconds: leaseSeconds,
        sweep_interval_seconds: sweepSeconds,
        bound_seconds: leaseSeconds + sweepSeconds,
        running_again_after_kill_ms: againMs,
      });
      expect(await survivor.stop()).toEqual({ code: 0, signal: null });
    } finally {
      killAll(processes);
    }
  });

  test("a pipeline failing retryably twice then succeeding ends done with attempts = 2 and two errors", { timeout: 90_000 }, async ({
    database: { db, url },
  }) => {
    await createRunsTable(db);
    const processes: IxProcess[] = [];
    try {
      const worker = spawnIx("worker", { ...base(url), IX_RETRY_BASE_SECONDS: "0.05", IX_RETRY_MAX_SECONDS: "0.2" });
      processes.push(worker);
      await waitFor("the worker to listen", async () => (await listeningWorkers(db)) === 1, { timeoutMs: 60_000 });
      const job = await insert(db, "flaky", { options: { ms: 10, retryable_failures: 2 } });
      const done = await ended(db, job);
      expect(done).toMatchObject({ status: "done", attempts: 2, response: { error: null, result: { attempt: 2 } } });
      expect(done.errors.map((e) => e.attempt)).toEqual([1, 2]);
      const runs = await listRuns(db);
      expect(runs.map((r) => [r.attempt, r.finished])).toEqual([
        [0, true],
        [1, true],
        [2, true],
      ]);
      printFigures("job-control-retry", { status: done.status, attempts: done.attempts, errors: done.errors.length, runs: runs.length });
      expect(await worker.stop()).toEqual({ code: 0, signal: null });
    } finally {
      killAll(processes);
    }
  });

  test("cancel of a running CPU-bound pipeline in a thread: cancelled within IX_CANCEL_GRACE_SECONDS + 1 s, the thread replaced; a pending job cancelled never starts", {
    timeout: 120_000,
  }, async ({ database: { db, url } }) => {
    await createRunsTable(db);
    const graceSeconds = 2;
    const dir = await mkdtemp(join(tmpdir(), "ix-cancel-"));
    const processes: IxProcess[] = [];
    try {
      const worker = spawnIx("worker", {
        ...base(url),
        IX_WORKER_CONCURRENCY: "1",
        IX_PIPELINE_MODULES: HOSTILE_MODULE,
        IX_CANCEL_GRACE_SECONDS: String(graceSeconds),
        IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "600",
      });
      processes.push(worker);
      await waitFor("the worker to listen", async () => (await listeningWorkers(db)) === 1, { timeoutMs: 60_000 });

      // Pending, then cancelled: it must never start. One transaction, so the worker cannot claim it in between.
      const never = await db.transaction(async (tx) => {
        const inserted = await insert(tx, "never", { options: { ms: 10 } });
        expect((await jobs.cancel(tx, { jobId: inserted.job_id, by: "client" })).outcome).toBe("cancelled");
        return inserted;
      });

      const spin = await insert(db, "spin", { use_case: "spin_beat", options: { dir } });
      const beatFile = join(dir, "spin.json");
      const beat = async (): Promise<Heartbeat | undefined> => {
        try {
          return JSON.parse(await readFile(beatFile, "utf8")) as Heartbeat;
        } catch {
          return undefined;
        }
      };
      await waitFor("the spin to beat", async () => (await beat()) !== undefined, { timeoutMs: 60_000 });
      const asked = Date.now();
      expect((await jobs.cancel(db, { jobId: spin.job_id, by: "operator" })).outcome).toBe("requested");
      const cancelled = await ended(db, spin);
      const cancelMs = Date.now() - asked;
      expect(cancelled.status).toBe("cancelled");
      expect(cancelMs).toBeLessThan((graceSeconds + 1) * 1000);
      // The thread is gone: its heartbeat stops advancing.
      const stoppedBeat = await waitFor("the heartbeat to stop", async () => {
        const a = (await beat())?.lastBeat ?? 0;
        return a > 0 && Date.now() - a > 500 ? a : undefined;
      });
      expect(stoppedBeat - asked).toBeLessThan((graceSeconds + 1) * 1000);

      // The only slot serves the next job, on a new thread.
      const next = await insert(db, "next", { options: { ms: 10 } });
      expect((await ended(db, next)).status).toBe("done");
      expect((await jobs.get(db, never.job_id))?.status).toBe("cancelled");
      expect((await listRuns(db)).map((r) => r.jobId)).toEqual([next.job_id]);
      printFigures("job-control-cancel", {
        cancel_grace_seconds: graceSeconds,
        cancelled_after_ms: cancelMs,
        thread_stopped_after_ms: Math.max(0, stoppedBeat - asked),
        pending_cancelled_runs: (await listRuns(db)).filter((r) => r.jobId === never.job_id).length,
      });
      expect(await worker.stop()).toEqual({ code: 0, signal: null });
    } finally {
      killAll(processes);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
