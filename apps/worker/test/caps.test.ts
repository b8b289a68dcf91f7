import { fileURLToPath } from "node:url";
import { test } from "@ix/testing";
import { ixWorkers, sql } from "@ix/store";
import { describe, expect } from "vitest";
import { submit } from "./fixtures";
import { startWorkerProcess } from "./fixtures/worker-bin";

const slowAndSteady = fileURLToPath(new URL("./fixtures/pipelines/slow-and-steady.mjs", import.meta.url));

describe("IX_USE_CASE_CONCURRENCY across worker processes", () => {
  test("two workers of concurrency 4 with slow:3 never run more than 3 slow jobs at once; steady jobs still run beside them", {
    timeout: 90_000,
  }, async ({ database: { db, url } }) => {
    const slow = await Promise.all(Array.from({ length: 12 }, () => submit(db, { use_case: "slow", options: { ms: 400 } })));
    const steady = await Promise.all(Array.from({ length: 10 }, () => submit(db, { use_case: "steady", options: { ms: 1200 } })));
    const env = {
      IX_POSTGRES_URL: url,
      IX_PIPELINE_MODULES: slowAndSteady,
      IX_PIPELINE_ISOLATION: "inline",
      IX_WORKER_CONCURRENCY: "4",
      IX_WORKER_USE_CASES: "slow,steady",
      IX_USE_CASE_CONCURRENCY: "slow:3",
    };
    const workers = [startWorkerProcess(env), startWorkerProcess(env)];
    const peak = { slow: 0, steady: 0, all: 0 };
    try {
      // Sampled from outside, as an operator would see it, until every job has ended.
      let left = slow.length + steady.length;
      while (left > 0) {
        const { rows } = await db.execute<{ use_case: string; status: string; n: number }>(
          sql`select use_case, status, count(*)::int as n from ix_jobs group by use_case, status`,
        );
        const running = (useCase: string) => rows.find((r) => r.use_case === useCase && r.status === "running")?.n ?? 0;
        peak.slow = Math.max(peak.slow, running("slow"));
        peak.steady = Math.max(peak.steady, running("steady"));
        peak.all = Math.max(peak.all, running("slow") + running("steady"));
        left = rows.filter((r) => r.status === "pending" || r.status === "running").reduce((sum, r) => sum + r.n, 0);
        for (const w of workers) if (w.child.exitCode !== null) throw new Error(`a worker exited early:\n${w.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const { rows } = await db.execute<{ status: string; n: number }>(sql`select status, count(*)::int as n from ix_jobs group by status`);
      expect(rows).toEqual([{ status: "done", n: 22 }]);

      // The cap held, and was reached: both workers together ran exactly up to 3 slow jobs.
      expect(peak.slow).toBe(3);
      // The uncapped use_case was not held to the cap: it took the slots slow jobs could not.
      expect(peak.steady).toBeGreaterThan(3);
      expect(peak.all).toBeLessThanOrEqual(8);

      // Both processes registered themselves with what they serve.
      const registered = await db.select().from(ixWorkers);
      expect(registered.map((r) => r.pid).sort()).toEqual(workers.map((w) => w.child.pid).sort());
      for (const row of registered) expect(row).toMatchObject({ useCases: ["slow", "steady"], concurrency: 4 });
    } finally {
      for (const w of workers) w.child.kill("SIGTERM");
      await Promise.all(workers.map((w) => w.exited));
    }
  });
});
