import { test } from "@ix/testing";
import { type Database, sql } from "@ix/store";
import { describe, expect } from "vitest";
import { appFor, asJob, body } from "./fixtures.ts";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async function storedTrace(db: Database, jobId: string) {
  const { rows } = await db.execute<{ traceparent: string | null; tracestate: string | null }>(
    sql`select traceparent, tracestate from ix_jobs where job_id = ${jobId}`,
  );
  return rows[0];
}

describe("trace context on submission", () => {
  test("POST /jobs stores the traceparent and tracestate; a resubmission keeps the first", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const submission = body();
      const first = await app.inject({ method: "POST", url: "/jobs", payload: submission, headers: { traceparent: TRACEPARENT, tracestate: "a=1" } });
      expect(first.statusCode).toBe(201);
      const job = asJob(first);
      expect(await storedTrace(db, job.job_id)).toEqual({ traceparent: TRACEPARENT, tracestate: "a=1" });
      // The Job contract does not carry it: it is how ix joins traces, not part of the job.
      expect(first.json()).not.toHaveProperty("traceparent");

      const again = await app.inject({
        method: "POST",
        url: "/jobs",
        payload: submission,
        headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      });
      expect(again.statusCode).toBe(200);
      expect(await storedTrace(db, job.job_id)).toEqual({ traceparent: TRACEPARENT, tracestate: "a=1" });
    } finally {
      await app.close();
    }
  });

  test("an invalid traceparent is ignored, not refused; tracestate alone is dropped", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const response = await app.inject({ method: "POST", url: "/jobs", payload: body(), headers: { traceparent: "00-abc-01", tracestate: "a=1" } });
      expect(response.statusCode).toBe(201);
      expect(await storedTrace(db, asJob(response).job_id)).toEqual({ traceparent: null, tracestate: null });
    } finally {
      await app.close();
    }
  });

  test("every item of POST /jobs/batch takes the request's trace context", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const response = await app.inject({
        method: "POST",
        url: "/jobs/batch",
        payload: { jobs: [body(), body()] },
        headers: { traceparent: TRACEPARENT },
      });
      expect(response.statusCode).toBe(200);
      const results = (response.json() as { results: Array<{ status: number; job: { job_id: string } }> }).results;
      expect(results.map((r) => r.status)).toEqual([201, 201]);
      for (const { job } of results) expect(await storedTrace(db, job.job_id)).toEqual({ traceparent: TRACEPARENT, tracestate: null });
    } finally {
      await app.close();
    }
  });
});
