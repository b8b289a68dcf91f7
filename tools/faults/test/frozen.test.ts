import { Job } from "@ix/contracts";
import { jobs } from "@ix/store";
import { describe, expect, test } from "@ix/testing";
import { listeningWorkers } from "../src/activity";
import { printFigures } from "../src/figures";
import { type IxProcess, killAll, spawnIx } from "../src/processes";
import { startReceiver } from "../src/receivers";
import { createRunsTable, listRuns } from "../src/runs";
import { waitFor } from "../src/wait";

/**
 * A worker frozen past the sweep horizon cannot overwrite its
 * successor. The first worker is SIGSTOPped mid-run; a second worker, whose
 * horizon is 2 s, sweeps the job, re-runs it and delivers its callback; then
 * the first is SIGCONTed and finishes its stale run. Its fenced completion
 * applies to no row, so it stores nothing and sends nothing.
 */
describe("frozen worker: SIGSTOP past the horizon, then SIGCONT", () => {
  test("the stale completion applies to 0 rows; the stored response and the one callback are the successor's", { timeout: 90_000 }, async ({
    database: { db, url },
  }) => {
    await createRunsTable(db);
    const receiver = await startReceiver((res) => res.writeHead(204).end());
    const base = {
      IX_POSTGRES_URL: url,
      IX_WORKER_CONCURRENCY: "1",
      IX_WORKER_POLL_INTERVAL_SECONDS: "0.2",
      IX_CALLBACK_ALLOWED_HOSTS: "127.0.0.1",
      IX_CALLBACK_TIMEOUT_SECONDS: "2",
      IX_LOG_LEVEL: "warn",
    };
    const processes: IxProcess[] = [];
    try {
      // The first worker's own horizon is far away: only the successor sweeps.
      const frozen = spawnIx("worker", { ...base, IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "60" });
      processes.push(frozen);
      await waitFor("the first worker to listen", async () => (await listeningWorkers(db)) === 1);
      const { job } = await jobs.insertPending(db, {
        request: {
          use_case: "recorded",
          ix_client_id: "frozen",
          request_id: "frozen-1",
          context: { texts: ["t"] },
          // The first run lasts 4 s, long enough to be frozen inside; the re-run takes 50 ms.
          options: { ms: 50, first_ms: 4_000 },
        },
        callbackUrl: receiver.url,
      });
      await waitFor("the first worker's run to start", async () => (await listRuns(db)).some((r) => r.pid === frozen.pid), { intervalMs: 5 });
      frozen.child.kill("SIGSTOP");
      const frozenAt = Date.now();
      expect(await jobs.get(db, job.job_id)).toMatchObject({ status: "running", attempts: 0, response: null });

      // Horizon 2 × 1 s: the successor sweeps the frozen run 2 s after it started.
      const successor = spawnIx("worker", { ...base, IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "1", IX_SWEEP_INTERVAL_SECONDS: "0.2" });
      processes.push(successor);
      const finished = await waitFor("the successor to finish the job and deliver its callback", async () => {
        const current = await jobs.get(db, job.job_id);
        return current?.callback_status === "delivered" ? current : undefined;
      });
      expect(finished).toMatchObject({ status: "done", attempts: 1, response: { error: null, result: { pid: successor.pid, attempt: 1 } } });
      expect(receiver.received).toHaveLength(1);

      frozen.child.kill("SIGCONT");
      const frozenMs = Date.now() - frozenAt;
      // The stale run reaches its end, and its worker reports the fenced write as not applied.
      await waitFor("the frozen run to reach its end", async () =>
        (await listRuns(db)).some((r) => r.pid === frozen.pid && r.attempt === 0 && r.finished),
      );
      const fenced = await frozen.waitForLine(
        "its fenced completion to be refused",
        (line) => line.job_id === job.job_id && typeof line.msg === "string" && line.msg.startsWith("response not stored"),
      );
      // Both drain and exit cleanly; nothing is left to deliver.
      expect(await frozen.stop()).toEqual({ code: 0, signal: null });
      expect(await successor.stop()).toEqual({ code: 0, signal: null });

      const stored = await jobs.get(db, job.job_id);
      expect(stored).toEqual(finished);
      expect(stored?.response?.metadata.attempt).toBe(2);
      const runs = await listRuns(db);
      expect(runs.map(({ pid, attempt, finished }) => ({ pid, attempt, finished }))).toEqual([
        { pid: frozen.pid, attempt: 0, finished: true },
        { pid: successor.pid, attempt: 1, finished: true },
      ]);
      // The receiver got the successor's result once, and never the stale one.
      expect(receiver.received).toHaveLength(1);
      const delivered = Job.parse(JSON.parse(receiver.received[0]?.body ?? "null"));
      expect(receiver.received[0]?.headers["webhook-id"]).toBe(job.job_id);
      expect(delivered.response?.result).toEqual({ pid: successor.pid, attempt: 1 });

      printFigures("frozen", {
        frozen_ms: frozenMs,
        // The worker logs "response not stored" exactly when its fenced write changed no row.
        stale_completion_rows: fenced.msg === undefined ? "?" : 0,
        stored_result_pid: stored?.response?.result?.pid === successor.pid ? "successor" : "stale",
        callbacks: receiver.received.length,
        callback_result_pid: delivered.response?.result?.pid === successor.pid ? "successor" : "stale",
      });
    } finally {
      for (const p of processes) p.child.kill("SIGCONT");
      killAll(processes);
      await receiver.close();
    }
  });
});
