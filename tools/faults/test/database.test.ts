import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Job } from "@ix/contracts";
import { connect, migrateUp, sql } from "@ix/store";
import { freePort, provisionPostgres, type ProvisionedPostgres } from "@ix/provision";
import { describe, expect, test } from "vitest";
import { registeredWorkers, statusCounts, terminalCount } from "../src/activity.ts";
import { printFigures, seededRandom } from "../src/figures.ts";
import { type IxProcess, killAll, spawnIx } from "../src/processes.ts";
import { pace, waitFor } from "../src/wait.ts";

const BATCH = 200;
const RETRY_AFTER_SECONDS = "1";

/**
 * Terminated connections and a full PostgreSQL restart
 * mid-run are survived by running processes. The shared test server cannot be
 * stopped, so this test runs its own embedded PostgreSQL and restarts it on
 * the same data directory and port under two workers and an API.
 */
describe("database faults under running workers and API", () => {
  test("pg_terminate_backend on every ix connection, then a restart: no process restarted, every job done, 503 while down", { timeout: 150_000 }, async () => {
    const random = seededRandom(7);
    const dir = await mkdtemp(join(tmpdir(), "ix-faults-pg-"));
    // As root, PostgreSQL runs as the postgres user, which must traverse the parent.
    await chmod(dir, 0o755);
    const dataDir = join(dir, "data");
    const port = await freePort();
    const startServer = () => provisionPostgres({ dataDir, port, persistent: true });
    let server: ProvisionedPostgres | undefined = await startServer();
    const url = server.url;
    // The test's own view of the database: it lives through the restart like the others (errors on idle clients are expected).
    const db = connect(url, { max: 2, connectionTimeoutMillis: 1_000, applicationName: "ix-fault-test", onIdleError: () => undefined });
    const processes: IxProcess[] = [];
    let submitted = 0;
    let retriedAfter503 = 0;

    /** A well-behaved client: POSTs each job, retrying a 503 after its Retry-After (a resubmission is idempotent). */
    async function submit(apiUrl: string, count: number): Promise<void> {
      const bodies = Array.from({ length: count }, () => ({
        use_case: "nap",
        ix_client_id: "db-faults",
        request_id: `db-${++submitted}`,
        context: { texts: ["t"] },
        options: { ms: 20 + Math.floor(random() * 181) },
      }));
      const post = async (body: object): Promise<void> => {
        for (let attempt = 1; ; attempt++) {
          const response = await fetch(`${apiUrl}/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
          await response.arrayBuffer();
          if (response.status === 201 || response.status === 200) return;
          if (response.status !== 503 || attempt >= 20) throw new Error(`POST /jobs answered ${response.status}`);
          expect(response.headers.get("retry-after")).toBe(RETRY_AFTER_SECONDS);
          retriedAfter503++;
          await pace(Number(response.headers.get("retry-after")) * 1000);
        }
      };
      for (let i = 0; i < bodies.length; i += 4) await Promise.all(bodies.slice(i, i + 4).map(post));
    }

    try {
      await migrateUp(db);
      const api = spawnIx("api", {
        IX_POSTGRES_URL: url,
        IX_API_PORT: "0",
        IX_API_DB_CONNECT_TIMEOUT_MS: "1000",
        IX_API_STATEMENT_TIMEOUT_MS: "3000",
        IX_API_RETRY_AFTER_SECONDS: RETRY_AFTER_SECONDS,
        IX_LOG_LEVEL: "error",
      });
      processes.push(api);
      const workerEnv = {
        IX_POSTGRES_URL: url,
        IX_WORKER_CONCURRENCY: "4",
        IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "5",
        IX_SWEEP_INTERVAL_SECONDS: "1",
        IX_WORKER_POLL_INTERVAL_SECONDS: "0.5",
        IX_LOG_LEVEL: "error",
      };
      const workers = [spawnIx("worker", workerEnv), spawnIx("worker", workerEnv)];
      processes.push(...workers);
      const apiUrl = String((await api.waitForLine("listening", (line) => line.fault === "listening")).url);
      // The API refuses (422) a use_case no registered worker serves.
      await waitFor("both workers registered", async () => (await registeredWorkers(db)) === 2);

      // 1. Mid-run, every worker and API connection is terminated by the server.
      await submit(apiUrl, BATCH);
      await waitFor("a quarter of the first batch done", async () => (await terminalCount(db)) >= BATCH / 4);
      const terminated = await db.execute<{ application_name: string; n: number }>(sql`
        select application_name, count(*)::int as n from (
          select application_name, pg_terminate_backend(pid) as killed from pg_stat_activity
          where application_name in ('ix-worker', 'ix-api') and pid <> pg_backend_pid()
        ) t where killed group by application_name`);
      const killedBy = Object.fromEntries(terminated.rows.map((r) => [r.application_name, r.n]));
      // Every worker had at least its LISTEN connection and the API its pooled ones.
      expect(killedBy["ix-worker"]).toBeGreaterThanOrEqual(workers.length);
      expect(killedBy["ix-api"]).toBeGreaterThanOrEqual(1);
      await submit(apiUrl, BATCH);
      const retriedAfterTerminate = retriedAfter503;

      // 2. Mid-run again, PostgreSQL itself stops.
      await waitFor("some of the second batch done", async () => (await terminalCount(db)) >= BATCH + BATCH / 4);
      const before = await statusCounts(db);
      await server.stop();
      server = undefined;
      const downAt = Date.now();
      const probes = [
        () => fetch(`${apiUrl}/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ use_case: "nap", ix_client_id: "db-faults", request_id: "while-down", context: { texts: ["t"] }, options: { ms: 1 } }) }),
        () => fetch(`${apiUrl}/jobs/00000000-0000-4000-8000-000000000000`),
        () => fetch(`${apiUrl}/jobs?client_id=db-faults`),
        () => fetch(`${apiUrl}/readyz`),
      ];
      let unavailable = 0;
      // Keep it down for a few seconds of probing: every answer a 503 with Retry-After, none a hang.
      while (Date.now() - downAt < 3_000) {
        for (const probe of probes) {
          const response = await probe();
          expect(response.status).toBe(503);
          expect(response.headers.get("retry-after")).toBe(RETRY_AFTER_SECONDS);
          expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
          await response.arrayBuffer();
          unavailable++;
        }
        await pace(100);
      }
      expect((await fetch(`${apiUrl}/healthz`)).status).toBe(200);
      for (const p of processes) expect(p.child.exitCode, `${p.pid} died while the database was down: ${p.stderr()}`).toBeNull();

      server = await startServer();
      const downMs = Date.now() - downAt;
      await waitFor("the API to be ready again", async () => (await fetch(`${apiUrl}/readyz`)).status === 200, { intervalMs: 100 });
      const retriedBeforeRecovery = retriedAfter503;
      await submit(apiUrl, BATCH);
      const retriedAfterRecovery = retriedAfter503 - retriedBeforeRecovery;
      const total = 3 * BATCH;
      await waitFor("every job to be done", async () => (await terminalCount(db)) === total, { timeoutMs: 60_000, intervalMs: 200 });
      expect(await statusCounts(db)).toEqual({ done: total });
      // The probe submitted while the database was down was never stored.
      const probe = await fetch(`${apiUrl}/jobs?client_id=db-faults&request_id=while-down`);
      expect(probe.status).toBe(404);
      const reran = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs where attempts > 0`);
      const sample = Job.parse(await (await fetch(`${apiUrl}/jobs?client_id=db-faults&request_id=db-1`)).json());
      expect(sample.status).toBe("done");

      // Nobody was restarted: the same processes served throughout, and they stop cleanly now.
      for (const p of processes) expect(await p.stop(), p.stderr()).toEqual({ code: 0, signal: null });
      printFigures("database", {
        jobs: total,
        terminated_worker_connections: killedBy["ix-worker"] ?? 0,
        terminated_api_connections: killedBy["ix-api"] ?? 0,
        retried_503_after_terminate: retriedAfterTerminate,
        done_before_restart: before.done ?? 0,
        unfinished_at_restart: (before.running ?? 0) + (before.pending ?? 0),
        down_ms: downMs,
        answers_503_while_down: unavailable,
        retried_503_after_recovery: retriedAfterRecovery,
        swept_and_rerun: reran.rows[0]?.n ?? -1,
        done: total,
        processes_restarted: 0,
      });
      expect(retriedAfterRecovery).toBe(0);
      // The restart really happened mid-run.
      expect((before.running ?? 0) + (before.pending ?? 0)).toBeGreaterThan(0);
    } finally {
      killAll(processes);
      await db.close();
      await server?.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
