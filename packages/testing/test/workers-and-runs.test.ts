import { jobs, sql, workers } from "@ix/store";
import { describe, expect } from "vitest";
import { finishRun, insertJob, registerTestWorker, runResponse, sampleRequest, test } from "../src/index.ts";

describe("registerTestWorker", () => {
  test("records a worker through the store's registry, each under its own id", async ({ database: { db } }) => {
    const first = await registerTestWorker(db, ["ocr", "extract_fields"]);
    const second = await registerTestWorker(db, ["ocr"], { host: "ix-bench", concurrency: 4 });
    expect(first.id).not.toBe(second.id);
    expect(await workers.knownUseCases(db, { withinDays: 1 })).toEqual(["extract_fields", "ocr"]);
    const { rows } = await db.execute<{ host: string; use_cases: string[]; concurrency: number; pid: number }>(
      sql`select host, use_cases, concurrency, pid from ix_workers order by concurrency`,
    );
    expect(rows).toEqual([
      { host: "test-host", use_cases: ["extract_fields", "ocr"], concurrency: 1, pid: process.pid },
      { host: "ix-bench", use_cases: ["ocr"], concurrency: 4, pid: process.pid },
    ]);
  });
});

describe("finishRun", () => {
  test("ends a claimed job done, or error with the message, as a worker's completion does", async ({ database: { db } }) => {
    await jobs.insertPending(db, { request: sampleRequest() });
    await jobs.insertPending(db, { request: sampleRequest() });
    const [ok, failing] = await jobs.claimPending(db, { limit: 2 });
    await finishRun(db, ok!);
    await finishRun(db, failing!, "the pipeline failed");
    expect(await jobs.get(db, ok!.job_id)).toMatchObject({ status: "done", response: { error: null, result: { fields: {} } } });
    expect(await jobs.get(db, failing!.job_id)).toMatchObject({
      status: "error",
      response: { error: "the pipeline failed", result: null, metadata: { attempt: 1 } },
    });
  });

  test("a run that is no longer the job's is refused, and the job is left as it was", async ({ database: { db } }) => {
    const ended = await insertJob(db, { status: "done" });
    await expect(finishRun(db, { ...ended, status: "running" })).rejects.toThrow(`job ${ended.job_id} was not running as attempt 1`);
    expect(await jobs.get(db, ended.job_id)).toEqual(ended);
    const rerun = await insertJob(db, { status: "running", attempts: 2 });
    await expect(finishRun(db, { ...rerun, attempts: 1 })).rejects.toThrow(/not running as attempt 2/);
    expect((await jobs.get(db, rerun.job_id))?.status).toBe("running");
  });

  test("runResponse is the response that run stores: the job's identity, its next attempt, no time", async () => {
    const request = sampleRequest();
    const job = { ix_id: "0123456789abcdef", client_id: request.ix_client_id, request_id: request.request_id, request, attempts: 3 };
    const response = runResponse(job, "boom");
    expect(response).toMatchObject({ ix_id: job.ix_id, request_id: job.request_id, ix_client_id: job.client_id, error: "boom", result: null });
    expect(response.metadata).toMatchObject({ pipeline: "extract_fields", attempt: 4, duration_ms: 0 });
    expect(response.metadata.started_at).toBe(response.metadata.finished_at);
  });
});
