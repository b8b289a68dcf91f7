import { Job } from "@ix/contracts";
import { jobs, sql } from "@ix/store";
import { insertJob, sampleRequest, test } from "@ix/testing";
import { describe, expect } from "vitest";
import { KEY_A, KEY_B, KEYS, appFor, asJob, bearer, body, expectProblem, jobCount } from "./fixtures.ts";

// POST /jobs's scheduling fields, and the job-control routes: cancel and retry.

const ofClient = (clientId: string, requestId: string) => sampleRequest({ ix_client_id: clientId, request_id: requestId });

describe("POST /jobs: scheduling fields", () => {
  test("priority, run_at and max_attempts are stored and served; unset they default", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const given = await app.inject({
        method: "POST",
        url: "/jobs",
        payload: body({ priority: 40, run_at: "2031-03-01T09:30:00+01:00", max_attempts: 5 }),
      });
      expect(given.statusCode).toBe(201);
      expect(Job.parse(given.json())).toMatchObject({ priority: 40, run_at: "2031-03-01T08:30:00.000Z", max_attempts: 5, errors: [] });
      const plain = asJob(await app.inject({ method: "POST", url: "/jobs", payload: body() }));
      expect(plain).toMatchObject({ priority: 0, run_at: plain.created_at, max_attempts: null, errors: [], cancel_requested_at: null });
    } finally {
      await app.close();
    }
  });

  test("bad values are 400 naming each field, and nothing is stored", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const response = await app.inject({
        method: "POST",
        url: "/jobs",
        payload: body({ priority: 101, run_at: "next tuesday", max_attempts: 26 }),
      });
      const problem = expectProblem(response, 400, "validation");
      expect(problem.errors?.map((e) => e.path).sort()).toEqual(["max_attempts", "priority", "run_at"]);
      for (const patch of [{ priority: 2.5 }, { max_attempts: 0 }, { run_at: "2030-01-01T00:00:00" }, { run_at: "1900-01-01T00:00:00Z" }]) {
        const bad = await app.inject({ method: "POST", url: "/jobs", payload: body(patch) });
        expect(expectProblem(bad, 400, "validation").errors?.map((e) => e.path), JSON.stringify(patch)).toEqual(Object.keys(patch));
      }
      expect(await jobCount(db)).toBe(0);
    } finally {
      await app.close();
    }
  });

  test("the scheduling fields are part of the same request: 200 when repeated, 409 when changed", async ({ database: { db } }) => {
    const app = await appFor(db);
    const post = (payload: Record<string, unknown>) => app.inject({ method: "POST", url: "/jobs", payload });
    try {
      const sent = body({ priority: 3, run_at: "2031-01-01T00:00:00Z", max_attempts: 2 });
      const first = asJob(await post(sent));
      // The same instant written with an offset is the same run_at.
      expect((await post({ ...sent, run_at: "2031-01-01T01:00:00+01:00" })).statusCode).toBe(200);
      for (const changed of [
        { priority: 4 },
        { priority: undefined },
        { run_at: "2031-01-01T00:00:01Z" },
        { run_at: undefined },
        { max_attempts: 3 },
        { max_attempts: undefined },
      ]) {
        const response = await post({ ...sent, ...changed });
        const problem = expectProblem(response, 409, "request-conflict");
        expect(problem.job_id, JSON.stringify(changed)).toBe(first.job_id);
        expect(problem.detail).toContain("priority, run_at or max_attempts");
      }
      // Absent is only the same as absent: priority 0 given explicitly is the default.
      const plain = body();
      expect((await post(plain)).statusCode).toBe(201);
      expect((await post({ ...plain, priority: 0 })).statusCode).toBe(200);
      expect(expectProblem(await post({ ...plain, max_attempts: 3 }), 409, "request-conflict").job_id).toBeDefined();
      expect(await jobCount(db)).toBe(2);
    } finally {
      await app.close();
    }
  });

  test("a resubmission still matches after retries moved run_at and a manual retry raised max_attempts", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const sent = body({ max_attempts: 2 });
      const created = asJob(await app.inject({ method: "POST", url: "/jobs", payload: sent }));
      const [running] = await jobs.claimPending(db, { limit: 1 });
      const response = (error: string) => ({
        use_case: running!.request.use_case,
        ix_client_id: running!.client_id,
        request_id: running!.request_id,
        ix_id: running!.ix_id,
        error,
        result: null,
        metadata: { pipeline: "p", started_at: running!.started_at!, finished_at: running!.started_at!, duration_ms: 0, attempt: 1 },
      });
      await jobs.completeRuns(db, [{ jobId: created.job_id, attempts: 0, response: response("429"), outcome: { kind: "retry", delaySeconds: 60 } }]);
      const moved = (await jobs.get(db, created.job_id))!;
      expect(moved.run_at).not.toBe(created.run_at);
      expect((await app.inject({ method: "POST", url: "/jobs", payload: sent })).statusCode).toBe(200);

      await db.execute(jobsEndedError(created.job_id));
      expect((await app.inject({ method: "POST", url: `/jobs/${created.job_id}/retry` })).statusCode).toBe(200);
      expect((await jobs.get(db, created.job_id))?.max_attempts).toBe(3);
      const again = await app.inject({ method: "POST", url: "/jobs", payload: sent });
      expect(again.statusCode).toBe(200);
      expect(asJob(again)).toMatchObject({ job_id: created.job_id, status: "pending", max_attempts: 3 });
    } finally {
      await app.close();
    }
  });
});

/** Ends a pending job `error` by hand (as its last run would have), so it can be retried. */
function jobsEndedError(jobId: string) {
  return sql`update ix_jobs set status = 'error', started_at = now(), finished_at = now(),
    response = jsonb_build_object('use_case', request->>'use_case', 'ix_client_id', client_id, 'request_id', request_id,
      'ix_id', ix_id, 'error', 'failed', 'result', null, 'metadata', jsonb_build_object('pipeline', 'p',
      'started_at', '2026-01-01T00:00:00.000Z', 'finished_at', '2026-01-01T00:00:00.000Z', 'duration_ms', 0, 'attempt', attempts + 1))
    where job_id = ${jobId}`;
}

describe("POST /jobs/{job_id}/cancel", () => {
  test("a pending job: 200, cancelled at once, its response naming its client; GET shows the same", async ({ database: { db } }) => {
    const app = await appFor(db, { apiKeys: KEYS });
    try {
      const job = await insertJob(db, { request: ofClient("client-a", "c-1"), callbackUrl: "https://hooks.example/a" });
      const response = await app.inject({ method: "POST", url: `/jobs/${job.job_id}/cancel`, headers: bearer(KEY_A) });
      expect(response.statusCode).toBe(200);
      const cancelled = Job.parse(response.json());
      expect(cancelled).toMatchObject({ job_id: job.job_id, status: "cancelled", response: { error: "cancelled by its client before it ran" } });
      expect(cancelled.cancel_requested_at).not.toBeNull();
      expect(asJob(await app.inject({ method: "GET", url: `/jobs/${job.job_id}`, headers: bearer(KEY_A) }))).toEqual(cancelled);
    } finally {
      await app.close();
    }
  });

  test("a running job: 202 with cancel_requested_at, again 202 on a repeat; the job keeps running for its worker to stop", async ({
    database: { db },
  }) => {
    const app = await appFor(db, { apiKeys: KEYS });
    try {
      const job = await insertJob(db, { status: "running", request: ofClient("client-a", "c-2") });
      const first = await app.inject({ method: "POST", url: `/jobs/${job.job_id}/cancel`, headers: bearer(KEY_A) });
      expect(first.statusCode).toBe(202);
      expect(asJob(first)).toMatchObject({ status: "running", cancel_requested_at: expect.any(String) });
      const second = await app.inject({ method: "POST", url: `/jobs/${job.job_id}/cancel`, headers: bearer(KEY_A) });
      expect(second.statusCode).toBe(202);
      expect(asJob(second).cancel_requested_at).toBe(asJob(first).cancel_requested_at);
    } finally {
      await app.close();
    }
  });

  test("an ended job is a 409 naming it and stays as it was", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      for (const status of ["done", "error", "cancelled"] as const) {
        const job = await insertJob(db, { status });
        const problem = expectProblem(await app.inject({ method: "POST", url: `/jobs/${job.job_id}/cancel` }), 409, "job-state-conflict");
        expect(problem).toMatchObject({ job_id: job.job_id, detail: expect.stringContaining(`already ended ${status}`) });
        expect(await jobs.get(db, job.job_id)).toEqual(job);
      }
    } finally {
      await app.close();
    }
  });

  test("without keys the cancel is an operator's", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const job = await insertJob(db);
      const response = await app.inject({ method: "POST", url: `/jobs/${job.job_id}/cancel` });
      expect(asJob(response).response?.error).toBe("cancelled by an operator before it ran");
    } finally {
      await app.close();
    }
  });

  test("another client's job and unknown ids are 404 and change nothing; a malformed id is 400; no key is 401", async ({
    database: { db },
  }) => {
    const app = await appFor(db, { apiKeys: KEYS });
    try {
      const theirs = await insertJob(db, { status: "running", request: ofClient("client-b", "c-3") });
      for (const id of [theirs.job_id, "00000000-0000-4000-8000-000000000000"]) {
        expectProblem(await app.inject({ method: "POST", url: `/jobs/${id}/cancel`, headers: bearer(KEY_A) }), 404, "not-found");
        expectProblem(await app.inject({ method: "POST", url: `/jobs/${id}/retry`, headers: bearer(KEY_A) }), 404, "not-found");
      }
      expect(await jobs.get(db, theirs.job_id)).toEqual(theirs);
      expectProblem(await app.inject({ method: "POST", url: "/jobs/x/cancel", headers: bearer(KEY_A) }), 400, "validation");
      expectProblem(await app.inject({ method: "POST", url: `/jobs/${theirs.job_id}/cancel` }), 401, "unauthorized");
      // Its own client can.
      expect((await app.inject({ method: "POST", url: `/jobs/${theirs.job_id}/cancel`, headers: bearer(KEY_B) })).statusCode).toBe(202);
    } finally {
      await app.close();
    }
  });
});

describe("POST /jobs/{job_id}/retry", () => {
  test("error and cancelled jobs go back to pending, same job_id, errors kept; others are 409", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const errors = [{ attempt: 1, at: "2026-01-01T00:00:00.000Z", error: "HTTP 503" }];
      const failed = await insertJob(db, { status: "error", errors, maxAttempts: 1 });
      const retried = await app.inject({ method: "POST", url: `/jobs/${failed.job_id}/retry` });
      expect(retried.statusCode).toBe(200);
      expect(Job.parse(retried.json())).toMatchObject({
        job_id: failed.job_id,
        status: "pending",
        attempts: 1,
        max_attempts: 2,
        errors,
        response: null,
        finished_at: null,
      });
      const cancelled = await insertJob(db, { status: "cancelled" });
      expect(asJob(await app.inject({ method: "POST", url: `/jobs/${cancelled.job_id}/retry` }))).toMatchObject({
        status: "pending",
        cancel_requested_at: null,
      });
      for (const status of ["pending", "running", "done"] as const) {
        const job = await insertJob(db, { status });
        const problem = expectProblem(await app.inject({ method: "POST", url: `/jobs/${job.job_id}/retry` }), 409, "job-state-conflict");
        expect(problem).toMatchObject({ job_id: job.job_id, detail: expect.stringContaining(`is ${status}`) });
        expect(await jobs.get(db, job.job_id)).toEqual(job);
      }
      // The retried job is pending again, so a second retry is a 409.
      expectProblem(await app.inject({ method: "POST", url: `/jobs/${failed.job_id}/retry` }), 409, "job-state-conflict");
    } finally {
      await app.close();
    }
  });

  test("a body is not needed, and one sent is ignored", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const job = await insertJob(db, { status: "error" });
      const response = await app.inject({ method: "POST", url: `/jobs/${job.job_id}/retry`, payload: { anything: true } });
      expect(response.statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
