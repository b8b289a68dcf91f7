import { Job } from "@ix/contracts";
import { jobs } from "@ix/store";
import { describe, expect, test } from "@ix/testing";
import { listeningWorkers } from "../src/activity.ts";
import { printFigures } from "../src/figures.ts";
import { type IxProcess, killAll, spawnIx } from "../src/processes.ts";
import { startReceiver } from "../src/receivers.ts";
import { createRunsTable, listRuns } from "../src/runs.ts";
import { waitFor } from "../src/wait.ts";

/**
 * A worker frozen past its lease cannot overwrite its successor. The first
 * worker (IX_LEASE_SECONDS=1.5) is SIGSTOPped mid-run and stops renewing; a
 * second worker, whose horizon is far away, rescues the job once the lease
 * runs out, re-runs it and delivers its callback; then the first is SIGCONTed.
 * Its stale run either learns at its next renewal that the lease is lost and
 * is dropped, or reaches its end first and its fenced completion applies to
 * no row: either way it stores nothing and sends nothing.
 */
describe("frozen worker: SIGSTOP past its lease, then SIGCONT", () => {
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
      // Both horizons are far away: only the lost lease brings the job back.
      const frozen = spawnIx("worker", { ...base, IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "60", IX_LEASE_SECONDS: "1.5" });
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

      // The successor rescues the frozen run once its 1.5 s lease has run out unrenewed.
      const successor = spawnIx("worker", { ...base, IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "60", IX_SWEEP_INTERVAL_SECONDS: "0.2" });
      processes.push(successor);
      const finished = await waitFor("the successor to finish the job and deliver its callback", async () => {
        const current = await jobs.get(db, job.job_id);
        return current?.callback_status === "delivered" ? current : undefined;
      });
      expect(finished).toMatchObject({ status: "done", attempts: 1, response: { error: null, result: { pid: successor.pid, attempt: 1 } } });
      expect(receiver.received).toHaveLength(1);

      frozen.child.kill("SIGCONT");
      const frozenMs = Date.now() - frozenAt;
      // The stale run is stopped at the frozen worker's next renewal (lease lost, result dropped), or reaches
      // its end first and its fenced write is refused: either way the worker says it stored nothing.
      const fenced = await frozen.waitForLine(
        "its stale run to be dropped or its fenced completion refused",
        (line) =>
          line.job_id === job.job_id &&
          typeof line.msg === "string" &&
          (line.msg.startsWith("response not stored") || line.msg.includes("lease was lost")),
      );
      // Both drain and exit cleanly; nothing is left to deliver.
      expect(await frozen.stop()).toEqual({ code: 0, signal: null });
      expect(await successor.stop()).toEqual({ code: 0, signal: null });

      const stored = await jobs.get(db, job.job_id);
      expect(stored).toEqual(finished);
      expect(stored?.response?.metadata.attempt).toBe(2);
      const runs = await listRuns(db);
      expect(runs.map(({ pid, attempt }) => ({ pid, attempt }))).toEqual([
        { pid: frozen.pid, attempt: 0 },
        { pid: successor.pid, attempt: 1 },
      ]);
      expect(runs[1]?.finished).toBe(true);
      // The receiver got the successor's result once, and never the stale one.
      expect(receiver.received).toHaveLength(1);
      const delivered = Job.parse(JSON.parse(receiver.received[0]?.body ?? "null"));
      expect(receiver.received[0]?.headers["webhook-id"]).toBe(job.job_id);
      expect(delivered.response?.result).toEqual({ pid: successor.pid, attempt: 1 });

      printFigures("frozen", {
        frozen_ms: frozenMs,
        // "response not stored": its fenced write changed no row; "lease was lost": its run was stopped unstored.
        stale_run: String(fenced.msg).startsWith("response not stored") ? "fenced" : "dropped_at_renewal",
        stale_completion_rows: 0,
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
