import type { Job } from "@ix/contracts";
import { jobs, sql } from "@ix/store";
import { describe, expect, test } from "@ix/testing";
import { listeningWorkers, statusCounts, terminalCount } from "../src/activity.ts";
import { printFigures, seededRandom } from "../src/figures.ts";
import { type IxProcess, killAll, spawnIx } from "../src/processes.ts";
import { createRunsTable, listRuns } from "../src/runs.ts";
import { pace, waitFor } from "../src/wait.ts";

const JOBS = 2_000;
const WORKERS = 4;
const KILL_EVERY_MS = 2_000;

/**
 * A worker killed with SIGKILL mid-job loses nothing, and no job is
 * claimed twice by concurrent claimers. Every run is recorded in fault_runs by
 * the process that ran it, so "re-runs only where a kill cut a run off" is
 * checked run by run against the pids that were killed.
 */
describe("crash: workers SIGKILLed at random while 2,000 jobs run", () => {
  test("every job ends done with one final response; the only re-runs are of runs a kill cut off", { timeout: 180_000 }, async ({
    database: { db, url },
  }) => {
    const seed = Date.now() % 1_000_000;
    const random = seededRandom(seed);
    await createRunsTable(db);
    const submitted: Job[] = [];
    for (let i = 0; i < JOBS; i += 50) {
      const batch = Array.from({ length: Math.min(50, JOBS - i) }, (_, k) =>
        jobs.insertPending(db, {
          request: {
            use_case: "recorded",
            ix_client_id: "crash",
            request_id: `crash-${i + k}`,
            context: { texts: [`job ${i + k}`] },
            options: { ms: 20 + Math.floor(random() * 181) },
          },
        }),
      );
      for (const { job } of await Promise.all(batch)) submitted.push(job);
    }
    expect(submitted).toHaveLength(JOBS);

    const env = {
      IX_POSTGRES_URL: url,
      IX_WORKER_CONCURRENCY: "4",
      // Horizon 4 s: a killed worker's jobs come back 4 s after their start; no live run gets near it.
      IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "2",
      IX_SWEEP_INTERVAL_SECONDS: "0.5",
      IX_WORKER_POLL_INTERVAL_SECONDS: "0.5",
      // A job may be cut off by several kills; it must still end done, not orphaned-error.
      IX_MAX_ATTEMPTS: "20",
      IX_LOG_LEVEL: "warn",
    };
    const all: IxProcess[] = [];
    const start = () => {
      const worker = spawnIx("worker", env);
      all.push(worker);
      return worker;
    };
    let live = Array.from({ length: WORKERS }, start);
    const killed = new Set<number>();
    const startedAt = Date.now();
    try {
      await waitFor("4 workers listening", async () => (await listeningWorkers(db)) === WORKERS);
      // Kill while there is work left to cut off; the tail then drains with the last replacements.
      while ((await terminalCount(db)) < JOBS * 0.9) {
        if (Date.now() - startedAt > 120_000) throw new Error("jobs stopped finishing while workers were being killed");
        await pace(KILL_EVERY_MS);
        const victim = live[Math.floor(random() * live.length)];
        if (!victim) continue;
        victim.child.kill("SIGKILL");
        expect(await victim.exited).toEqual({ code: null, signal: "SIGKILL" });
        killed.add(victim.pid);
        live = [...live.filter((w) => w !== victim), start()];
      }
      await waitFor("every job to be terminal", async () => (await terminalCount(db)) === JOBS, { timeoutMs: 60_000, intervalMs: 200 });
      const elapsedMs = Date.now() - startedAt;
      // The survivors drain and exit cleanly on SIGTERM.
      for (const result of await Promise.all(live.map((w) => w.stop()))) expect(result).toEqual({ code: 0, signal: null });

      expect(await statusCounts(db)).toEqual({ done: JOBS });
      const stored = await db.execute<{ job_id: string; attempts: number; pid: number; attempt: number; meta_attempt: number }>(sql`
        select job_id, attempts, (response -> 'result' ->> 'pid')::int as pid, (response -> 'result' ->> 'attempt')::int as attempt,
               (response -> 'metadata' ->> 'attempt')::int as meta_attempt
        from ix_jobs`);
      const runs = await listRuns(db);
      const runsByJob = new Map<string, typeof runs>();
      for (const run of runs) runsByJob.set(run.jobId, [...(runsByJob.get(run.jobId) ?? []), run]);

      let lost = 0;
      let mismatched = 0;
      let reruns = 0;
      let rerunsOfLiveRuns = 0;
      for (const job of stored.rows) {
        const jobRuns = runsByJob.get(job.job_id) ?? [];
        const final = jobRuns.at(-1);
        if (!final) {
          lost++;
          continue;
        }
        // The one stored response is the last run's, and its fence matched the row's attempts.
        if (job.pid !== final.pid || job.attempt !== final.attempt || job.attempt !== job.attempts || job.meta_attempt !== job.attempts + 1) {
          mismatched++;
        }
        reruns += jobRuns.length - 1;
        // Every run before the final one belongs to a killed process.
        rerunsOfLiveRuns += jobRuns.slice(0, -1).filter((run) => !killed.has(run.pid)).length;
      }
      const duplicateClaims = runs.length - new Set(runs.map((r) => `${r.jobId}/${r.attempt}`)).size;
      const cutOff = runs.filter((r) => !r.finished);
      const killsThatCutRuns = new Set(cutOff.map((r) => r.pid)).size;

      printFigures("crash", {
        jobs: JOBS,
        workers: WORKERS,
        kills: killed.size,
        kills_mid_job: killsThatCutRuns,
        runs: runs.length,
        reruns,
        runs_cut_off: cutOff.length,
        lost: JOBS - stored.rows.length + lost,
        duplicate_claims: duplicateClaims,
        wrong_final_response: mismatched,
        reruns_of_live_runs: rerunsOfLiveRuns,
        seconds: (elapsedMs / 1000).toFixed(1),
        seed,
      });
      expect(stored.rows).toHaveLength(JOBS);
      expect(lost).toBe(0);
      expect(duplicateClaims).toBe(0);
      expect(mismatched).toBe(0);
      expect(rerunsOfLiveRuns).toBe(0);
      // Only killed processes left runs unfinished, and the kills really did cut runs off.
      expect(cutOff.filter((r) => !killed.has(r.pid))).toEqual([]);
      expect(killed.size).toBeGreaterThanOrEqual(3);
      expect(killsThatCutRuns).toBeGreaterThan(0);
      expect(reruns).toBeGreaterThanOrEqual(cutOff.length);
    } finally {
      killAll(all);
    }
  });
});
