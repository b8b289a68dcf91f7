import { Job, JobList } from "@ix/contracts";
import { freePort } from "@ix/provision";
import { connect } from "@ix/store";
import { createTestDatabase, insertJob, sampleRequest, test } from "@ix/testing";
import { describe, expect } from "vitest";
import { REPLICA_READS } from "../src/reads.ts";
import { appFor, body, expectProblem, jobCount } from "./fixtures.ts";

// Which database answers each read (src/reads.ts). The "replica" here is a second database holding other jobs,
// so every answer shows where it came from; streaming replication with real lag is tools/faults' replica-reads test.

/** The value of one series in Prometheus text, or undefined when it is absent. */
function series(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe("reads with a replica (IX_POSTGRES_READ_URL)", () => {
  test("lists, /metrics and the dashboard's lists and counts read the replica; a job by id or request_id and every write, the primary", async ({ database }) => {
    const replicaDatabase = await createTestDatabase();
    const replica = connect(replicaDatabase.url, { max: 4 });
    try {
      const onPrimary = await insertJob(database.db, { request: sampleRequest({ ix_client_id: "client-a" }) });
      const onReplica = await insertJob(replica, { status: "error", request: sampleRequest({ ix_client_id: "client-a", use_case: "replica_only" }) });
      const app = await appFor(database.db, {}, { replica });
      try {
        const get = (url: string) => app.inject({ method: "GET", url });

        // The replica's reads, one per entry of REPLICA_READS.
        const answered: Record<keyof typeof REPLICA_READS, boolean> = {
          "job-list": JobList.parse((await get("/jobs?client_id=client-a")).json()).items.map((j) => j.job_id).join() === onReplica.job_id,
          metrics: series((await get("/metrics")).body, 'ix_jobs{status="error",use_case="replica_only"}') === 1,
          "dashboard-overview": (await get("/ui")).body.includes("replica_only"),
          "dashboard-job-list": ((page) => page.includes(onReplica.job_id) && !page.includes(onPrimary.job_id))((await get("/ui/jobs?client=client-a")).body),
          "dashboard-failed-count": /<b>1<\/b> failed job matches/.test((await get("/ui/retry-failed?client=client-a")).body),
        };
        expect(answered).toEqual(Object.fromEntries(Object.keys(REPLICA_READS).map((read) => [read, true])));
        expect(series((await get("/metrics")).body, 'ix_jobs{status="pending",use_case="extract_fields"}')).toBeUndefined();

        // The primary's: one job by its id or its request_id, in the API and on the dashboard.
        expect(Job.parse((await get(`/jobs/${onPrimary.job_id}`)).json()).job_id).toBe(onPrimary.job_id);
        expectProblem(await get(`/jobs/${onReplica.job_id}`), 404, "not-found");
        expect((await get(`/jobs?client_id=client-a&request_id=${onPrimary.request.request_id}`)).statusCode).toBe(200);
        expectProblem(await get(`/jobs?client_id=client-a&request_id=${onReplica.request.request_id}`), 404, "not-found");
        expect((await get(`/ui/jobs/${onPrimary.job_id}`)).statusCode).toBe(200);
        expect((await get(`/ui/jobs/${onReplica.job_id}`)).statusCode).toBe(404);
        expect((await get(`/ui/jobs?client=client-a&request_id=${onPrimary.request.request_id}`)).body).toContain(onPrimary.job_id);

        // Writes, and the reads inside them, on the primary.
        const submission = body({ ix_client_id: "client-a", request_id: "written-to-the-primary" });
        expect((await app.inject({ method: "POST", url: "/jobs", payload: submission })).statusCode).toBe(201);
        expect((await app.inject({ method: "POST", url: "/jobs", payload: submission })).statusCode).toBe(200);
        expect((await app.inject({ method: "POST", url: `/jobs/${onPrimary.job_id}/cancel` })).statusCode).toBe(200);
        expect((await app.inject({ method: "POST", url: `/jobs/${onPrimary.job_id}/retry` })).statusCode).toBe(200);
        expectProblem(await app.inject({ method: "POST", url: `/jobs/${onReplica.job_id}/retry` }), 404, "not-found");
        expect(await jobCount(database.db)).toBe(2);
        expect(await jobCount(replica)).toBe(1);
      } finally {
        await app.close();
      }

      // Without a replica, the same list reads the primary.
      const alone = await appFor(database.db);
      try {
        const items = JobList.parse((await alone.inject({ method: "GET", url: "/jobs?client_id=client-a" })).json()).items;
        expect(items.map((j) => j.job_id)).toContain(onPrimary.job_id);
        expect(items.map((j) => j.job_id)).not.toContain(onReplica.job_id);
      } finally {
        await alone.close();
      }
    } finally {
      await replica.close();
      await replicaDatabase.drop();
    }
  });

  test("a replica that cannot be reached: its reads answer 503 naming it, with Retry-After; the primary's reads and writes go on", async ({ database }) => {
    // Nothing listens on a port just found free.
    const replica = connect(`postgres://postgres@127.0.0.1:${await freePort()}/ix`, { max: 2, connectionTimeoutMillis: 500 });
    const job = await insertJob(database.db, { request: sampleRequest({ ix_client_id: "client-a" }) });
    const app = await appFor(database.db, { retryAfterSeconds: 7 }, { replica });
    try {
      const get = (url: string) => app.inject({ method: "GET", url });
      const list = await get("/jobs?client_id=client-a");
      const problem = expectProblem(list, 503, "unavailable");
      expect(problem.detail).toMatch(/read replica/);
      expect(list.headers["retry-after"]).toBe("7");
      const page = await get("/ui/jobs?client=client-a");
      expect(page.statusCode).toBe(503);
      expect(page.body).toContain("read replica");
      expect((await get("/ui")).statusCode).toBe(503);
      const metrics = await get("/metrics");
      expect(metrics.statusCode).toBe(200);
      expect(series(metrics.body, "ix_metrics_database_up")).toBe(0);

      expect((await get(`/jobs/${job.job_id}`)).statusCode).toBe(200);
      expect((await get(`/jobs?client_id=client-a&request_id=${job.request.request_id}`)).statusCode).toBe(200);
      expect((await get(`/ui/jobs/${job.job_id}`)).statusCode).toBe(200);
      expect((await app.inject({ method: "POST", url: "/jobs", payload: body() })).statusCode).toBe(201);
      expect((await get("/readyz")).statusCode).toBe(200);
    } finally {
      await app.close();
      await replica.close();
    }
  });
});
