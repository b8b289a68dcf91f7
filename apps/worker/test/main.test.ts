import { fileURLToPath } from "node:url";
import { test } from "@ix/testing";
import { jobs, sql } from "@ix/store";
import { describe, expect } from "vitest";
import { submit, waitFor } from "./fixtures";
import { startWorkerProcess } from "./fixtures/worker-bin";

const napModule = fileURLToPath(new URL("./fixtures/pipelines/nap.mjs", import.meta.url));

describe("the worker process (runWorkerMain)", () => {
  test("SIGTERM: stops claiming, finishes the job in flight, exits 0", async ({ database: { db, url } }) => {
    const worker = startWorkerProcess({ IX_POSTGRES_URL: url, IX_PIPELINE_MODULES: napModule, IX_WORKER_CONCURRENCY: "1" });
    try {
      const busy = await submit(db, { use_case: "nap", options: { ms: 1500 } });
      await waitFor("the job to be claimed", async () => (await jobs.get(db, busy.job_id))?.status === "running", {
        timeoutMs: 30_000,
      });
      const queued = await submit(db, { use_case: "nap", options: { ms: 1 } });
      worker.child.kill("SIGTERM");
      const [code] = await worker.exited;
      expect(code, worker.output()).toBe(0);
      expect(await jobs.get(db, busy.job_id)).toMatchObject({ status: "done", response: { result: { napped_ms: 1500 } } });
      // Concurrency 1 kept it waiting, and after SIGTERM nothing more is claimed.
      expect((await jobs.get(db, queued.job_id))?.status).toBe("pending");
      expect(worker.output()).toContain("shutdown requested");
    } finally {
      worker.child.kill("SIGKILL");
    }
  });

  test("a bad variable stops start-up with a message naming it", async () => {
    const worker = startWorkerProcess({ IX_POSTGRES_URL: "postgres://x@127.0.0.1:1/none", IX_CALLBACK_SECRET: "nope" });
    const [code] = await worker.exited;
    expect(code).toBe(1);
    expect(worker.output()).toContain('IX_CALLBACK_SECRET: must start with "whsec_"');
  });

  test("an IX_WORKER_USE_CASES name without a pipeline stops start-up naming it and the registered pipelines", async ({
    database: { db, url },
  }) => {
    const worker = startWorkerProcess({ IX_POSTGRES_URL: url, IX_PIPELINE_MODULES: napModule, IX_WORKER_USE_CASES: "nap,ocr" });
    const [code] = await worker.exited;
    expect(code, worker.output()).toBe(1);
    expect(worker.output()).toContain('IX_WORKER_USE_CASES: no pipeline is registered for "ocr" (registered: extract_fields, nap)');
    // It stopped before registering or claiming anything.
    expect((await db.execute(sql`select count(*)::int as n from ix_workers`)).rows).toEqual([{ n: 0 }]);
  });

  test("a bad IX_USE_CASE_CONCURRENCY stops start-up naming the variable and the bad entry", async () => {
    const worker = startWorkerProcess({ IX_POSTGRES_URL: "postgres://x@127.0.0.1:1/none", IX_USE_CASE_CONCURRENCY: "ocr:4,llm=16" });
    const [code] = await worker.exited;
    expect(code).toBe(1);
    expect(worker.output()).toContain('IX_USE_CASE_CONCURRENCY: "llm=16" is not use_case:limit, e.g. ocr:4');
  });

  test("without IX_POSTGRES_URL it refuses to start, naming the variable", async () => {
    const worker = startWorkerProcess({});
    const [code] = await worker.exited;
    expect(code).toBe(1);
    expect(worker.output()).toContain("IX_POSTGRES_URL: is required to run a worker");
  });
});
