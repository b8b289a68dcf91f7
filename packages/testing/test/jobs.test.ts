import { JOB_STATUSES } from "@ix/contracts";
import { jobs, sql } from "@ix/store";
import { describe, expect } from "vitest";
import { callbackState, finishRun, insertJob, sampleRequest, setCallbackStatus, test } from "../src/index.ts";

describe("insertJob", () => {
  test("inserts a valid row in every status with no more than the status given", async ({ database: { db } }) => {
    for (const status of JOB_STATUSES) {
      const job = await insertJob(db, { status });
      expect(job.status).toBe(status);
      expect(await jobs.get(db, job.job_id)).toEqual(job);
    }
    const count = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs`);
    expect(count.rows[0]?.n).toBe(JOB_STATUSES.length);
  });

  test("defaults follow the lifecycle: a terminal job has a response and, with a callback_url, a due delivery", async ({
    database: { db },
  }) => {
    const pending = await insertJob(db);
    expect(pending).toMatchObject({ status: "pending", attempts: 0, started_at: null, finished_at: null, response: null });
    expect(pending.request.ix_id).toBe(pending.ix_id);

    const failed = await insertJob(db, { status: "error", attempts: 2, callbackUrl: "https://hooks.example/a" });
    expect(failed.response).toMatchObject({ ix_id: failed.ix_id, error: "failed in a test fixture", result: null });
    expect(failed.response?.metadata.attempt).toBe(3);
    expect(failed.finished_at).not.toBeNull();
    expect((await callbackState(db, failed.job_id))?.nextAttemptAt).not.toBeNull();
    const due = await jobs.claimDueCallbacks(db, { limit: 10, leaseSeconds: 30 });
    expect(due.map((d) => d.job.job_id)).toEqual([failed.job_id]);
  });

  test("explicit fields win, and a running job from the factory is claimed state the repo can finish", async ({
    database: { db },
  }) => {
    const startedAt = new Date("2026-01-02T03:04:05.678Z");
    const request = sampleRequest({ ix_client_id: "factory-svc" });
    const running = await insertJob(db, { status: "running", attempts: 1, startedAt, request });
    expect(running).toMatchObject({ status: "running", attempts: 1, client_id: "factory-svc", started_at: startedAt.toISOString() });
    await finishRun(db, running);
    expect(await jobs.get(db, running.job_id)).toMatchObject({ status: "done", response: { metadata: { attempt: 2 } } });
  });

  test("a fixture that contradicts itself is refused by the table", async ({ database: { db } }) => {
    await expect(insertJob(db, { status: "running", startedAt: null })).rejects.toThrow();
    await expect(insertJob(db, { status: "done", response: null })).rejects.toThrow();
  });
});

describe("admin helpers", () => {
  test("setCallbackStatus changes callback_status and nothing else", async ({ database: { db } }) => {
    const { job } = await jobs.insertPending(db, { request: sampleRequest(), callbackUrl: "https://hooks.example/a" });
    const [running] = await jobs.claimPending(db, { limit: 1 });
    expect(await setCallbackStatus(db, { jobId: job.job_id, callbackStatus: "delivered" })).toBe(true);
    expect(await jobs.get(db, job.job_id)).toEqual({ ...running, callback_status: "delivered" });
    expect(await setCallbackStatus(db, { jobId: "00000000-0000-4000-8000-000000000000", callbackStatus: "failed" })).toBe(false);
  });

  test("callbackState reads the delivery bookkeeping, null for an unknown job", async ({ database: { db } }) => {
    const job = await insertJob(db, {
      status: "done",
      callbackUrl: "https://hooks.example/a",
      callbackAttempts: 2,
      callbackLastError: "HTTP 503",
    });
    expect(await callbackState(db, job.job_id)).toMatchObject({ attempts: 2, lastError: "HTTP 503" });
    expect(await callbackState(db, "00000000-0000-4000-8000-000000000000")).toBeNull();
  });
});
