import { Job, JobList } from "@ix/contracts";
import { connect } from "@ix/store";
import { registerTestWorker } from "@ix/testing/workers";
import { describe, expect, test } from "vitest";
import { printFigures } from "../src/figures.ts";
import { type IxProcess, killAll, spawnIx } from "../src/processes.ts";
import { startReplication } from "../src/replication.ts";
import { waitFor } from "../src/wait.ts";

/** The standby's artificial lag: every commit reaches its readers this long after the primary acknowledged it. */
const APPLY_DELAY_MS = 5_000;
const RETRY_AFTER_SECONDS = "1";

const json = { "content-type": "application/json" };

function napBody(requestId: string) {
  return { use_case: "nap", ix_client_id: "replica", request_id: requestId, context: { texts: ["t"] }, options: { ms: 10 } };
}

/** The value of one series in Prometheus text, or undefined when the series is absent. */
function series(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/**
 * IX_POSTGRES_READ_URL against a real hot standby (FAULTS.md, "Read replica"):
 * the `ix api` process reads lists, /metrics and the dashboard's lists from a
 * standby held 5 s behind by `recovery_min_apply_delay`, and everything a
 * caller must see of its own writes from the primary.
 */
describe("reads from a lagging streaming replica", () => {
  test("a job is readable by id and request_id right after POST, while the replica's list and /metrics do not have it yet; replica down: lists 503", { timeout: 60_000 }, async () => {
    const replication = await startReplication();
    const processes: IxProcess[] = [];
    try {
      await replication.createIxDatabase();
      const primaryUrl = replication.primary.url("ix");
      const primary = connect(primaryUrl, { max: 2 });
      try {
        await registerTestWorker(primary, ["nap"]);
      } finally {
        await primary.close();
      }
      await replication.caughtUp();
      await replication.setApplyDelay(APPLY_DELAY_MS);

      const api = spawnIx("api", {
        IX_POSTGRES_URL: primaryUrl,
        IX_POSTGRES_READ_URL: replication.standby.url("ix"),
        IX_API_PORT: "0",
        IX_API_DB_CONNECT_TIMEOUT_MS: "1000",
        IX_API_RETRY_AFTER_SECONDS: RETRY_AFTER_SECONDS,
        IX_LOG_LEVEL: "info",
      });
      processes.push(api);
      const apiUrl = String((await api.waitForLine("listening", (line) => line.fault === "listening")).url);
      const get = async (path: string) => {
        const response = await fetch(`${apiUrl}${path}`);
        return { status: response.status, headers: response.headers, text: await response.text() };
      };

      // The write and every read that must see it, within the standby's lag.
      const posted = Date.now();
      const created = await fetch(`${apiUrl}/jobs`, { method: "POST", headers: json, body: JSON.stringify(napBody("lag-1")) });
      expect(created.status).toBe(201);
      const job = Job.parse(await created.json());
      const listed = await get("/jobs?client_id=replica");
      const metrics = await get("/metrics");
      const byId = await get(`/jobs/${job.job_id}`);
      const byRequestId = await get("/jobs?client_id=replica&request_id=lag-1");
      // A resubmission compares against the stored job, a cancel and a retry act on it: all on the primary.
      const resubmitted = await fetch(`${apiUrl}/jobs`, { method: "POST", headers: json, body: JSON.stringify(napBody("lag-1")) });
      const cancelled = await fetch(`${apiUrl}/jobs/${job.job_id}/cancel`, { method: "POST" });
      const retried = await fetch(`${apiUrl}/jobs/${job.job_id}/retry`, { method: "POST" });
      const dashboardList = await get("/ui/jobs?client=replica");
      const dashboardJob = await get(`/ui/jobs/${job.job_id}`);
      const withinLagMs = Date.now() - posted;
      // Everything above ran before the standby applied the insert, or the list proves nothing.
      expect(withinLagMs, "the reads after the POST outlasted the standby's lag, so they cannot show where they were served").toBeLessThan(APPLY_DELAY_MS);

      expect(byId.status).toBe(200);
      expect(Job.parse(JSON.parse(byId.text)).job_id).toBe(job.job_id);
      expect(byRequestId.status).toBe(200);
      expect(Job.parse(JSON.parse(byRequestId.text)).job_id).toBe(job.job_id);
      expect(resubmitted.status).toBe(200);
      expect(Job.parse(await resubmitted.json()).job_id).toBe(job.job_id);
      expect(cancelled.status).toBe(200);
      expect(Job.parse(await cancelled.json()).status).toBe("cancelled");
      expect(retried.status).toBe(200);
      expect(Job.parse(await retried.json()).status).toBe("pending");
      expect(dashboardJob.status).toBe(200);
      expect(dashboardJob.text).toContain(job.job_id);
      // Served by the replica, which has not applied the insert yet.
      expect(listed.status).toBe(200);
      expect(JobList.parse(JSON.parse(listed.text)).items).toEqual([]);
      expect(dashboardList.status).toBe(200);
      expect(dashboardList.text).not.toContain(job.job_id);
      expect(metrics.status).toBe(200);
      expect(series(metrics.text, "ix_metrics_database_up")).toBe(1);
      expect(series(metrics.text, 'ix_jobs{status="pending",use_case="nap"}')).toBeUndefined();

      // Once the standby has applied it, the replica's reads show it: the job as the primary holds it now.
      await replication.caughtUp(APPLY_DELAY_MS + 10_000);
      const caughtUpMs = Date.now() - posted;
      const later = JobList.parse(JSON.parse((await get("/jobs?client_id=replica")).text)).items;
      expect(later.map((j) => [j.job_id, j.status])).toEqual([[job.job_id, "pending"]]);
      expect((await get("/ui/jobs?client=replica")).text).toContain(job.job_id);
      // /metrics caches its database figures for 5 s.
      await waitFor(
        "/metrics to count the job",
        async () => series((await get("/metrics")).text, 'ix_jobs{status="pending",use_case="nap"}') === 1,
        { timeoutMs: 15_000, intervalMs: 250 },
      );

      // The replica down: its reads answer 503 naming it; nothing that reads the primary is affected.
      await replication.standby.stop("immediate");
      const down = await get("/jobs?client_id=replica");
      expect(down.status).toBe(503);
      expect(down.headers.get("retry-after")).toBe(RETRY_AFTER_SECONDS);
      expect(down.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(down.text)).toMatchObject({ type: "https://ix.dev/problems/unavailable", detail: expect.stringMatching(/read replica/) });
      const downPage = await get("/ui/jobs?client=replica");
      expect(downPage.status).toBe(503);
      expect(downPage.text).toContain("read replica");
      expect((await get(`/jobs/${job.job_id}`)).status).toBe(200);
      expect((await get("/jobs?client_id=replica&request_id=lag-1")).status).toBe(200);
      const whileDown = await fetch(`${apiUrl}/jobs`, { method: "POST", headers: json, body: JSON.stringify(napBody("lag-2")) });
      expect(whileDown.status).toBe(201);
      // /metrics keeps answering (process and HTTP figures), saying the database figures are missing.
      await waitFor(
        "/metrics to report the replica down",
        async () => {
          const scrape = await get("/metrics");
          return scrape.status === 200 && series(scrape.text, "ix_metrics_database_up") === 0;
        },
        { timeoutMs: 15_000, intervalMs: 250 },
      );

      // Back up: the same API process serves lists again, from the replica, without a restart.
      await replication.standby.start();
      await replication.setApplyDelay(0);
      await replication.caughtUp();
      await waitFor("the list to answer again", async () => (await get("/jobs?client_id=replica")).status === 200, { timeoutMs: 15_000, intervalMs: 100 });
      const back = JobList.parse(JSON.parse((await get("/jobs?client_id=replica")).text)).items;
      expect(back.map((j) => j.request.request_id).sort()).toEqual(["lag-1", "lag-2"]);

      expect(await api.stop(), api.stderr()).toEqual({ code: 0, signal: null });
      printFigures("replica-reads", {
        apply_delay_ms: APPLY_DELAY_MS,
        reads_after_post_ms: withinLagMs,
        get_by_id_after_post: byId.status,
        list_from_replica_items: 0,
        replica_caught_up_ms: caughtUpMs,
        list_with_replica_down: down.status,
        get_by_id_with_replica_down: 200,
      });
    } finally {
      killAll(processes);
      await replication.close();
    }
  });
});
