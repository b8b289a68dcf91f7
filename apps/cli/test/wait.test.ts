import { jobs } from "@ix/store";
import { insertJob, sampleRequest, test, waitFor } from "@ix/testing";
import { describe, expect } from "vitest";
import { listeningApi, printedJob, runToEnd } from "./api.ts";
import { runIx, startIx } from "./run-ix.ts";

// `ix submit --wait`, `ix get [--wait]` and their exit codes: 0 done, 3 error or cancelled, 4 timed out.

describe("ix submit --wait", () => {
  test("follows the job it submitted until it is done, prints it then, exit 0", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const request = sampleRequest();
      const ix = startIx(["submit", "-", "--wait", "--interval", "50ms"], env, JSON.stringify(request));
      const jobId = await waitFor("ix to report the job pending", () => /^([0-9a-f-]{36}) pending$/m.exec(ix.output.stderr)?.[1]);
      // Nothing on stdout until the job ended: a script reads one JSON document, the final one.
      expect(ix.output.stdout).toBe("");
      await runToEnd(db, jobId);
      const { code, stdout, stderr } = await ix.result;
      expect(code, stderr).toBe(0);
      expect(printedJob(stdout)).toEqual(await jobs.get(db, jobId));
      expect(printedJob(stdout)).toMatchObject({ status: "done", request_id: request.request_id });
      expect(stderr).toContain(`${jobId} done`);
    } finally {
      await app.close();
    }
  });

  test("a job that ends error exits 3; one already submitted and ended is printed at once", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const body = JSON.stringify(sampleRequest());
      const ix = startIx(["submit", "-", "--wait", "--interval", "50ms"], env, body);
      const jobId = await waitFor("ix to report the job pending", () => /^([0-9a-f-]{36}) pending$/m.exec(ix.output.stderr)?.[1]);
      await runToEnd(db, jobId, "the pipeline failed");
      const failed = await ix.result;
      expect(failed.code, failed.stderr).toBe(3);
      expect(printedJob(failed.stdout)).toMatchObject({ job_id: jobId, status: "error", response: { error: "the pipeline failed" } });

      const again = await runIx(["submit", "-", "--wait"], env, body);
      expect(again.code).toBe(3);
      expect(again.stderr).toContain(`already submitted: job ${jobId} (error)`);
      expect(printedJob(again.stdout).job_id).toBe(jobId);
    } finally {
      await app.close();
    }
  });

  test("--timeout runs out: exit 4, the last state printed, and how to go on waiting", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const result = await runIx(["submit", "-", "--wait", "--timeout", "1s", "--interval", "100ms"], env, JSON.stringify(sampleRequest()));
      expect(result.code, result.stderr).toBe(4);
      const job = printedJob(result.stdout);
      expect(job.status).toBe("pending");
      expect(result.stderr).toContain(`ix: job ${job.job_id} still pending after 1 s; it may still end: ix get ${job.job_id} --wait`);
    } finally {
      await app.close();
    }
  });

  test("bad --wait flags are usage errors (exit 2) and nothing is submitted", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const body = JSON.stringify(sampleRequest());
      const timeout = await runIx(["submit", "-", "--wait", "--timeout", "soon"], env, body);
      expect(timeout.code).toBe(2);
      expect(timeout.stderr).toContain("--timeout/--interval");
      const interval = await runIx(["submit", "-", "--wait", "--interval", "0ms"], env, body);
      expect(interval.code).toBe(2);
      const batch = await runIx(["submit", "--batch", "--wait", "-"], env, body);
      expect(batch.code).toBe(2);
      expect(batch.stderr).toContain("--wait follows one job: it cannot be combined with --batch");
      expect((await jobs.listJobs(db, { clientId: sampleRequest().ix_client_id, limit: 10 })).items).toEqual([]);
    } finally {
      await app.close();
    }
  });
});

describe("ix get", () => {
  test("exit 0 for a job done or not ended yet, 3 for one that ended error or cancelled, 1 for an unknown one", async ({
    database: { db },
  }) => {
    const { app, env } = await listeningApi(db);
    try {
      for (const [status, code] of [["pending", 0], ["running", 0], ["done", 0], ["error", 3], ["cancelled", 3]] as const) {
        const job = await insertJob(db, { status });
        const result = await runIx(["get", job.job_id], env);
        expect(result.code, status).toBe(code);
        expect(printedJob(result.stdout)).toEqual(job);
      }
      const unknown = await runIx(["get", "00000000-0000-4000-8000-000000000000"], env);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain("GET /jobs/00000000-0000-4000-8000-000000000000 answered 404");
    } finally {
      await app.close();
    }
  });

  test("--wait that runs out of --timeout exits 4 printing the job as last seen", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const running = await insertJob(db, { status: "running" });
      const result = await runIx(["get", running.job_id, "--wait", "--timeout", "1s", "--interval", "100ms"], env);
      expect(result.code).toBe(4);
      expect(printedJob(result.stdout)).toEqual(running);
      expect(result.stderr).toContain(`still running after 1 s`);
    } finally {
      await app.close();
    }
  });

  test("no API there: exit 1 saying it cannot be reached", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    await app.close();
    const result = await runIx(["get", "00000000-0000-4000-8000-000000000000", "--wait"], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`cannot reach the ix API at ${env.IX_API_URL}`);
  });
});
