import type { Job } from "@ix/contracts";
import { jobs } from "@ix/store";
import { insertJob, test, waitFor } from "@ix/testing";
import { describe, expect } from "vitest";
import { listeningApi } from "./api.ts";
import { runIx, spawnIx } from "./run-ix.ts";

// `ix cancel`, `ix retry` and `ix get --wait` on a cancelled job, as real processes against a real API.

describe("ix cancel / ix retry", () => {
  test("cancel: a pending job at once, a running one requested, an ended one refused (exit 1)", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const pending = await insertJob(db);
      const cancelled = await runIx(["cancel", pending.job_id], env);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect(JSON.parse(cancelled.stdout)).toMatchObject({ job_id: pending.job_id, status: "cancelled" });

      const running = await insertJob(db, { status: "running" });
      const requested = await runIx(["cancel", running.job_id], env);
      expect(requested.code, requested.stderr).toBe(0);
      expect(requested.stderr).toContain("cancel requested");
      expect(JSON.parse(requested.stdout)).toMatchObject({ status: "running", cancel_requested_at: expect.any(String) });

      const done = await insertJob(db, { status: "done" });
      const refused = await runIx(["cancel", done.job_id], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("409");
      expect(refused.stderr).toContain("already ended done");
      expect(await jobs.get(db, done.job_id)).toEqual(done);
    } finally {
      await app.close();
    }
  });

  test("retry: an ended job is pending again (exit 0); a pending one is refused (exit 1)", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const failed = await insertJob(db, { status: "error" });
      const retried = await runIx(["retry", failed.job_id], env);
      expect(retried.code, retried.stderr).toBe(0);
      expect(JSON.parse(retried.stdout)).toMatchObject({ job_id: failed.job_id, status: "pending", attempts: 1 });
      const again = await runIx(["retry", failed.job_id], env);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain("is pending");
    } finally {
      await app.close();
    }
  });

  test("get --wait follows a running job until it is cancelled, then exits 3 like an error", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const running = await insertJob(db, { status: "running" });
      const child = spawnIx(["get", running.job_id, "--wait", "--interval", "50ms"], env);
      let stdout = "";
      let stderr = "";
      child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const exit = new Promise<number | null>((resolve) => child.on("close", resolve));
      await waitFor("ix get --wait to report the job running", () => stderr.includes(`${running.job_id} running`));
      // The cancel, then the worker's side of it: its completion stores the job cancelled.
      expect((await jobs.cancel(db, { jobId: running.job_id, by: "operator" })).outcome).toBe("requested");
      const response = {
        use_case: running.request.use_case,
        ix_client_id: running.client_id,
        request_id: running.request_id,
        ix_id: running.ix_id,
        error: "aborted",
        result: null,
        metadata: { pipeline: "p", started_at: running.started_at!, finished_at: running.started_at!, duration_ms: 0, attempt: 1 },
      };
      expect(await jobs.completeRuns(db, [{ jobId: running.job_id, attempts: 0, response, outcome: { kind: "cancelled" } }])).toEqual([
        { jobId: running.job_id, status: "cancelled" },
      ]);
      expect(await exit).toBe(3);
      expect((JSON.parse(stdout) as Job).status).toBe("cancelled");
      expect(stderr).toContain(`${running.job_id} cancelled`);
    } finally {
      await app.close();
    }
  });
});
