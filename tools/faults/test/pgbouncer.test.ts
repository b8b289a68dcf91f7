import { Job } from "@ix/contracts";
import { describe, expect, test } from "@ix/testing";
import { connect, pg, sql } from "@ix/store";
import { statusCounts } from "../src/activity.ts";
import { printFigures } from "../src/figures.ts";
import { type PgBouncer, startPgBouncer } from "../src/pgbouncer.ts";
import { type IxProcess, killAll, spawnIx } from "../src/processes.ts";
import { pace, waitFor } from "../src/wait.ts";

const RETRY_AFTER_SECONDS = "1";

/** The environment both processes share behind the pooler. */
function pooled(bouncer: PgBouncer): Record<string, string> {
  return { IX_POSTGRES_URL: bouncer.url, IX_POSTGRES_POOL_MODE: "transaction" };
}

function startApi(bouncer: PgBouncer, env: Record<string, string> = {}): IxProcess {
  return spawnIx("api", {
    ...pooled(bouncer),
    IX_API_PORT: "0",
    IX_API_DB_CONNECT_TIMEOUT_MS: "1000",
    IX_API_RETRY_AFTER_SECONDS: RETRY_AFTER_SECONDS,
    // info: IxProcess.stop() sends SIGTERM only after the process has logged that it started.
    IX_LOG_LEVEL: "info",
    ...env,
  });
}

async function apiUrlOf(api: IxProcess): Promise<string> {
  return String((await api.waitForLine("listening", (line) => line.fault === "listening")).url);
}

function napBody(requestId: string, ms = 20) {
  return { use_case: "nap", ix_client_id: "pgb", request_id: requestId, context: { texts: ["t"] }, options: { ms } };
}

/** POSTs one job, retrying a 503 after its Retry-After like a well-behaved client; resolves once it is accepted. */
async function submit(apiUrl: string, requestId: string, on503: () => void): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(`${apiUrl}/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(napBody(requestId)) });
    await response.arrayBuffer();
    if (response.status === 201 || response.status === 200) return;
    if (response.status !== 503 || attempt >= 30) throw new Error(`POST /jobs ${requestId} answered ${response.status}`);
    expect(response.headers.get("retry-after")).toBe(RETRY_AFTER_SECONDS);
    on503();
    await pace(Number(RETRY_AFTER_SECONDS) * 1000);
  }
}

/**
 * ix behind a real PgBouncer in transaction pooling mode (FAULTS.md, "PgBouncer
 * restart"): the API and worker processes connect only through it, with
 * IX_POSTGRES_POOL_MODE=transaction. The test's own connections go to
 * PostgreSQL directly.
 */
describe("behind PgBouncer in transaction pooling mode", () => {
  test("a client sending statement_timeout as a startup parameter is refused, as ix's pool once did", async ({ database }) => {
    const bouncer = await startPgBouncer(database.url);
    try {
      const client = new pg.Client({ connectionString: bouncer.url, statement_timeout: 1_000 });
      await expect(client.connect()).rejects.toThrow(/unsupported startup parameter/);
      await client.end().catch(() => {});
      // ix's pool sends none, and still bounds statements: in a transaction of their own, SET LOCAL.
      const db = connect(bouncer.url, { max: 2, statementTimeoutMillis: 300, poolMode: "transaction" });
      try {
        await expect(db.execute(sql`select pg_sleep(3)`)).rejects.toMatchObject({ cause: { code: "57014" } });
        await expect(db.transaction((tx) => tx.execute(sql`select pg_sleep(3)`))).rejects.toMatchObject({ cause: { code: "57014" } });
        // The server connections PgBouncer shares carry no timeout to the next client.
        const plain = new pg.Client({ connectionString: bouncer.url });
        await plain.connect();
        try {
          expect((await plain.query("show statement_timeout")).rows).toEqual([{ statement_timeout: "0" }]);
        } finally {
          await plain.end();
        }
      } finally {
        await db.close();
      }
    } finally {
      await bouncer.close();
    }
  });

  test("API and worker through PgBouncer: jobs complete, a statement past IX_API_STATEMENT_TIMEOUT_MS answers 503", { timeout: 90_000 }, async ({ database }) => {
    const bouncer = await startPgBouncer(database.url);
    const processes: IxProcess[] = [];
    try {
      const api = startApi(bouncer, { IX_API_STATEMENT_TIMEOUT_MS: "500" });
      const worker = spawnIx("worker", { ...pooled(bouncer), IX_WORKER_POLL_INTERVAL_SECONDS: "0.2", IX_LOG_LEVEL: "info" });
      processes.push(api, worker);
      const apiUrl = await apiUrlOf(api);
      await waitFor("the worker registered", async () => (await database.db.execute(sql`select 1 from ix_workers`)).rows.length === 1);

      const count = 100;
      for (let i = 0; i < count; i += 10) {
        await Promise.all(Array.from({ length: 10 }, (_, k) => submit(apiUrl, `job-${i + k}`, () => {})));
      }
      await waitFor("every job done", async () => (await statusCounts(database.db)).done === count, { timeoutMs: 60_000, intervalMs: 100 });
      const job = Job.parse(await (await fetch(`${apiUrl}/jobs?client_id=pgb&request_id=job-0`)).json());
      // `attempts` counts the runs before the one that ended it: this one ran once.
      expect(job).toMatchObject({ status: "done", attempts: 0 });

      // A read stuck behind a lock is cancelled by the timeout the API set with SET LOCAL.
      const locker = await database.db.$client.connect();
      let stuckMs: number;
      try {
        await locker.query("begin");
        await locker.query("lock table ix_jobs in access exclusive mode");
        const started = Date.now();
        const response = await fetch(`${apiUrl}/jobs/${job.job_id}`);
        stuckMs = Date.now() - started;
        expect(response.status).toBe(503);
        expect(stuckMs).toBeLessThan(3_000);
      } finally {
        await locker.query("rollback").catch(() => {});
        locker.release();
      }
      expect((await fetch(`${apiUrl}/jobs/${job.job_id}`)).status).toBe(200);
      for (const p of processes) expect(await p.stop(), p.stderr()).toEqual({ code: 0, signal: null });
      printFigures("pgbouncer-basic", { jobs: count, done: count, statement_timeout_ms: 500, stuck_read_answered_503_after_ms: stuckMs });
    } finally {
      killAll(processes);
      await bouncer.close();
    }
  });

  test("the worker LISTENs on IX_LISTEN_URL, and without it polls", { timeout: 90_000 }, async ({ database }) => {
    const bouncer = await startPgBouncer(database.url);
    const processes: IxProcess[] = [];
    const listeners = async () =>
      (
        await database.db.execute<{ application_name: string }>(sql`
          select application_name from pg_stat_activity where datname = current_database() and query ilike 'listen %'`)
      ).rows.map((r) => r.application_name);
    try {
      const api = startApi(bouncer);
      processes.push(api);
      const apiUrl = await apiUrlOf(api);

      // Without IX_LISTEN_URL: no LISTEN (it would be lost on a pooled server connection), a line saying so, jobs found by the poll.
      const polling = spawnIx("worker", { ...pooled(bouncer), IX_WORKER_POLL_INTERVAL_SECONDS: "0.5", IX_LOG_LEVEL: "info" });
      processes.push(polling);
      const said = await polling.waitForLine("the polling notice", (line) => String(line.msg).startsWith("not listening for NOTIFY"));
      expect(said).toMatchObject({ level: 30, pollIntervalSeconds: 0.5 });
      await submit(apiUrl, "polled", () => {});
      await waitFor("the polled job done", async () => (await statusCounts(database.db)).done === 1);
      expect(await listeners()).toEqual([]);
      expect(await polling.stop(), polling.stderr()).toEqual({ code: 0, signal: null });

      // With IX_LISTEN_URL: one LISTEN session straight to PostgreSQL, and a NOTIFY wakes the worker long before its poll would.
      const listening = spawnIx("worker", {
        ...pooled(bouncer),
        IX_LISTEN_URL: database.url,
        IX_WORKER_POLL_INTERVAL_SECONDS: "600",
        IX_LOG_LEVEL: "info",
      });
      processes.push(listening);
      await waitFor("the LISTEN session", async () => (await listeners()).length === 1);
      expect(await listeners()).toEqual(["ix-worker-listen"]);
      expect(listening.lines.some((line) => String(line.msg).startsWith("not listening for NOTIFY"))).toBe(false);
      // The start-up claim has run (it follows LISTEN); from now on only a NOTIFY can wake a claim within the test.
      await pace(500);
      const started = Date.now();
      await submit(apiUrl, "notified", () => {});
      await waitFor("the notified job done", async () => (await statusCounts(database.db)).done === 2, { timeoutMs: 20_000 });
      const wokenInMs = Date.now() - started;
      expect(await listening.stop(), listening.stderr()).toEqual({ code: 0, signal: null });
      expect(await listeners()).toEqual([]);
      printFigures("pgbouncer-listen", { polled_job_done: true, notified_job_done_ms: wokenInMs, poll_interval_s: 600 });
    } finally {
      killAll(processes);
      await bouncer.close();
    }
  });

  test("a PgBouncer restart under load: 503 while it is down, no process restarted, every accepted job done once", { timeout: 150_000 }, async ({ database }) => {
    const bouncer = await startPgBouncer(database.url);
    const processes: IxProcess[] = [];
    try {
      const api = startApi(bouncer, { IX_API_STATEMENT_TIMEOUT_MS: "3000" });
      const workerEnv = {
        ...pooled(bouncer),
        IX_LISTEN_URL: database.url,
        IX_WORKER_CONCURRENCY: "4",
        IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "5",
        IX_SWEEP_INTERVAL_SECONDS: "1",
        IX_WORKER_POLL_INTERVAL_SECONDS: "0.5",
        IX_LOG_LEVEL: "info",
      };
      // One worker LISTENs straight to PostgreSQL, the other only polls through the pooler.
      const { IX_LISTEN_URL: _direct, ...pollingEnv } = workerEnv;
      const workers = [spawnIx("worker", workerEnv), spawnIx("worker", pollingEnv)];
      processes.push(api, ...workers);
      const apiUrl = await apiUrlOf(api);
      await waitFor("both workers registered", async () => (await database.db.execute(sql`select 1 from ix_workers`)).rows.length === 2);

      // A steady stream of submissions, four at a time, from before the restart until after it.
      const accepted: string[] = [];
      let retried503 = 0;
      let submitting = true;
      let next = 0;
      const submitter = async () => {
        while (submitting) {
          const requestId = `r-${next++}`;
          await submit(apiUrl, requestId, () => retried503++);
          accepted.push(requestId);
          await pace(5);
        }
      };
      const streams = Array.from({ length: 4 }, submitter);
      await waitFor("jobs flowing", async () => ((await statusCounts(database.db)).done ?? 0) >= 50, { timeoutMs: 30_000 });

      // PgBouncer goes away (every client and server connection closed at once) for three seconds.
      const before = await statusCounts(database.db);
      await bouncer.stop();
      const downAt = Date.now();
      let unavailable = 0;
      while (Date.now() - downAt < 3_000) {
        const response = await fetch(`${apiUrl}/jobs?client_id=pgb`);
        await response.arrayBuffer();
        expect(response.status).toBe(503);
        expect(response.headers.get("retry-after")).toBe(RETRY_AFTER_SECONDS);
        unavailable++;
        await pace(100);
      }
      for (const p of processes) expect(p.child.exitCode, `${p.pid} died while PgBouncer was down: ${p.stderr()}`).toBeNull();
      await bouncer.start();
      const downMs = Date.now() - downAt;
      await waitFor("the API to be ready again", async () => (await fetch(`${apiUrl}/readyz`)).status === 200, { intervalMs: 100 });
      const readyAfterMs = Date.now() - downAt - downMs;
      const acceptedAtRecovery = accepted.length;
      await waitFor("more jobs accepted after the restart", () => accepted.length >= acceptedAtRecovery + 50, { timeoutMs: 30_000 });
      submitting = false;
      await Promise.all(streams);

      // Every job accepted with a 2xx is stored and done, once: one row, one result.
      const drainFrom = Date.now();
      await waitFor("every accepted job done", async () => (await statusCounts(database.db)).done === accepted.length, { timeoutMs: 60_000, intervalMs: 200 });
      const drainMs = Date.now() - drainFrom;
      expect(await statusCounts(database.db)).toEqual({ done: accepted.length });
      const rows = await database.db.execute<{ request_id: string; attempts: number; has_result: boolean; errors: Array<{ error: string }> }>(
        sql`select request_id, attempts, response is not null and response->'result' is not null as has_result, errors from ix_jobs where client_id = 'pgb'`,
      );
      // Why each rerun happened, as the job's own error history says.
      const rerunBecause = [...new Set(rows.rows.flatMap((r) => r.errors.map((e) => e.error)))];
      expect(rows.rows.map((r) => r.request_id).sort()).toEqual([...accepted].sort());
      expect(rows.rows.filter((r) => !r.has_result)).toEqual([]);
      const attempts = rows.rows.map((r) => r.attempts);
      // `attempts` counts the runs before the last: a run cut off by the restart may be run once more, never more.
      expect(Math.min(...attempts)).toBe(0);
      expect(Math.max(...attempts)).toBeLessThanOrEqual(1);

      // The same processes served throughout, and they stop cleanly now.
      const stopFrom = Date.now();
      for (const p of processes) expect(await p.stop(), p.stderr()).toEqual({ code: 0, signal: null });
      const stopMs = Date.now() - stopFrom;
      printFigures("pgbouncer-restart", {
        accepted: accepted.length,
        done: accepted.length,
        done_before_restart: before.done ?? 0,
        unfinished_at_restart: (before.running ?? 0) + (before.pending ?? 0),
        down_ms: downMs,
        api_ready_after_ms: readyAfterMs,
        drain_after_submissions_ms: drainMs,
        answers_503_while_down: unavailable,
        submissions_retried_after_503: retried503,
        rerun_after_restart: attempts.filter((n) => n > 0).length,
        rerun_because: JSON.stringify(rerunBecause),
        processes_restarted: 0,
        stop_all_ms: stopMs,
      });
      expect((before.running ?? 0) + (before.pending ?? 0)).toBeGreaterThan(0);
    } finally {
      killAll(processes);
      await bouncer.close();
    }
  });
});
