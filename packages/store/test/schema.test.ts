import { pushSchema } from "drizzle-kit/api";
import { describe, expect } from "vitest";
import { connect, jobs, loadMigrations, migrateDown, migrateUp, migrationStatus, sql } from "../src/index.ts";
import * as schema from "../src/schema.ts";
import { createTestDatabase, insertJob, request, sqlState, test } from "./fixtures.ts";

const validRequest = (id: string) =>
  JSON.stringify({ use_case: "x", ix_client_id: "c", request_id: id, context: { texts: ["t"] }, options: {} });

describe("CHECK constraints", () => {
  const impossible: Array<[string, string]> = [
    ["running without started_at", `status = 'running', started_at = null`],
    ["done without finished_at", `status = 'done', response = '{}'::jsonb`],
    ["error without a response", `status = 'error', finished_at = now()`],
    ["pending with started_at", `status = 'pending', started_at = now()`],
    ["pending with finished_at", `finished_at = now()`],
    ["an unknown status", `status = 'queued'`],
    ["an unknown callback_status", `callback_status = 'maybe'`],
    ["a callback state without a callback_url", `callback_next_attempt_at = now()`],
    ["a malformed ix_id", `ix_id = 'ABC'`],
    ["negative attempts", `attempts = -1`],
  ];
  for (const [what, assignment] of impossible) {
    test(`reject ${what}`, async ({ database: { db } }) => {
      const { job } = await jobs.insertPending(db, { request: request() });
    const error = await db.execute(sql.raw(`update ix_jobs set ${assignment} where job_id = '${job.job_id}'`)).catch((e: unknown) => e);
    expect(sqlState(error)).toBe("23514"); // check_violation
    expect(await jobs.get(db, job.job_id)).toEqual(job);
    });
  }

  // Job control's invariants, each checked against the constraint that must refuse it.
  const impossibleControl: Array<[string, "pending" | "running", string, string]> = [
    ["a cancelled job whose cancel was never requested", "pending", `status = 'cancelled', finished_at = now(), response = '{}'::jsonb`, "ix_jobs_cancelled_was_requested"],
    ["a pending job with a cancel requested", "pending", `cancel_requested_at = now(), cancel_requested_by = 'client'`, "ix_jobs_cancel_requested_state"],
    ["a cancel request without who asked", "running", `cancel_requested_at = now()`, "ix_jobs_cancel_requester"],
    ["a cancel requested by someone unknown", "running", `cancel_requested_at = now(), cancel_requested_by = 'robot'`, "ix_jobs_cancel_requester"],
    ["a running job without a lease", "running", `lease_expires_at = null`, "ix_jobs_lease_iff_running"],
    ["a pending job with a lease", "pending", `lease_expires_at = now()`, "ix_jobs_lease_iff_running"],
    ["a priority above 100", "pending", `priority = 101`, "ix_jobs_priority_range"],
    ["a priority below -100", "pending", `priority = -101`, "ix_jobs_priority_range"],
    ["max_attempts of 0", "pending", `max_attempts = 0, submitted_max_attempts = 0`, "ix_jobs_max_attempts_valid"],
    ["max_attempts below what was submitted", "pending", `max_attempts = 2, submitted_max_attempts = 3`, "ix_jobs_max_attempts_valid"],
    ["max_attempts without its submitted value", "pending", `max_attempts = 3`, "ix_jobs_max_attempts_valid"],
    ["errors that are not a list", "pending", `errors = '{}'::jsonb`, "ix_jobs_errors_bounded"],
    [
      "more than 20 errors",
      "pending",
      `errors = (select jsonb_agg(jsonb_build_object('attempt', g, 'at', '2026-01-01T00:00:00.000Z', 'error', 'x')) from generate_series(1, 21) as g)`,
      "ix_jobs_errors_bounded",
    ],
  ];
  for (const [what, status, assignment, constraint] of impossibleControl) {
    test(`reject ${what} (${constraint})`, async ({ database: { db } }) => {
      const job = await insertJob(db, { status });
      const error = await db.execute(sql.raw(`update ix_jobs set ${assignment} where job_id = '${job.job_id}'`)).catch((e: unknown) => e);
      expect(sqlState(error)).toBe("23514");
      expect(constraintOf(error)).toBe(constraint);
      expect(await jobs.get(db, job.job_id)).toEqual(job);
    });
  }

  test("reject a second row for the same (client_id, request_id) even without ON CONFLICT", async ({ database: { db } }) => {
    const insert = (ixId: string) =>
      db.execute(sql`insert into ix_jobs (ix_id, client_id, request_id, request, use_case)
                     values (${ixId}, 'c', 'same', ${validRequest("same")}::jsonb, 'x')`);
    await insert("0000000000000001");
    expect(sqlState(await insert("0000000000000002").catch((e: unknown) => e))).toBe("23505");
  });
});

/** The constraint a pg error names, looking through Drizzle's wrapper. */
function constraintOf(error: unknown): string | undefined {
  for (let current = error, depth = 0; typeof current === "object" && current !== null && depth < 8; depth++) {
    if ("constraint" in current && typeof current.constraint === "string") return current.constraint;
    current = "cause" in current ? current.cause : undefined;
  }
  return undefined;
}

describe("migrations", () => {
  test("up → down → up on an empty database, with status at each step", async () => {
    const empty = await createTestDatabase({ empty: true });
    const db = connect(empty.url, { max: 2 });
    try {
      const all = loadMigrations().map((m) => m.tag);
      expect(all.length).toBeGreaterThan(0);
      expect(await migrationStatus(db)).toMatchObject({ applied: [], pending: all, current: false });

      expect(await migrateUp(db)).toEqual(all);
      expect(await migrateUp(db)).toEqual([]); // idempotent
      expect(await migrationStatus(db)).toMatchObject({ applied: all, pending: [], current: true });
      await jobs.insertPending(db, { request: request() });

      expect(await migrateDown(db, { steps: all.length })).toEqual([...all].reverse());
      const table = await db.execute<{ t: string | null }>(sql`select to_regclass('ix_jobs')::text as t`);
      expect(table.rows[0]?.t).toBeNull();
      expect(await migrationStatus(db)).toMatchObject({ applied: [], current: false });
      expect(await migrateDown(db)).toEqual([]); // nothing left to revert

      expect(await migrateUp(db)).toEqual(all);
      expect(await jobs.claimPending(db, { limit: 1 })).toEqual([]); // the table is back, empty
      await jobs.insertPending(db, { request: request() });
      expect((await jobs.claimPending(db, { limit: 1 })).map((j) => j.status)).toEqual(["running"]);
    } finally {
      await db.close();
      await empty.drop();
    }
  });

  test("0002 moves real v1 rows in every state, and its down takes v2 rows back to v1", async () => {
    const empty = await createTestDatabase({ empty: true });
    const db = connect(empty.url, { max: 4 });
    try {
      const migrations = loadMigrations();
      const v1 = migrations.filter((m) => m.tag < "0002");
      expect(v1.map((m) => m.tag)).toEqual(["0000_init", "0001_callback_hosts"]);
      await migrateUp(db, v1);
      // The table's shape: columns, constraints and indexes, to compare v1 with what the down leaves.
      const shapeNow = async () => ({
        columns: (
          await db.execute<{ d: string }>(
            sql`select column_name || ' ' || data_type || coalesce(' default ' || column_default, '') as d
                from information_schema.columns where table_name = 'ix_jobs' order by ordinal_position`,
          )
        ).rows.map((r) => r.d),
        constraints: (
          await db.execute<{ d: string }>(
            sql`select conname || ' ' || pg_get_constraintdef(oid) as d from pg_constraint where conrelid = 'ix_jobs'::regclass order by conname`,
          )
        ).rows.map((r) => r.d),
        indexes: (await db.execute<{ d: string }>(sql`select indexdef as d from pg_indexes where tablename = 'ix_jobs' order by indexname`)).rows.map(
          (r) => r.d,
        ),
      });
      const v1Shape = await shapeNow();

      // Rows as v1 code wrote them, one per v1 state (and callback state).
      const ixId = (n: number) => n.toString(16).padStart(16, "0");
      const requestJson = (n: number) =>
        JSON.stringify({ use_case: "extract_fields", ix_client_id: "v1", request_id: `r${n}`, ix_id: ixId(n), context: { texts: ["t"] }, options: {} });
      const responseJson = (n: number, error: string | null) =>
        JSON.stringify({
          use_case: "extract_fields",
          ix_client_id: "v1",
          request_id: `r${n}`,
          ix_id: ixId(n),
          error,
          result: error === null ? { fields: {} } : null,
          metadata: { pipeline: "extract_fields", started_at: "2026-01-01T00:00:00.000Z", finished_at: "2026-01-01T00:00:01.000Z", duration_ms: 1000, attempt: 1 },
        });
      await db.execute(sql`
        insert into ix_jobs (ix_id, client_id, request_id, request, status, attempts, created_at, started_at, finished_at, response,
                             callback_url, callback_status, callback_attempts, callback_next_attempt_at)
        values
          (${ixId(1)}, 'v1', 'r1', ${requestJson(1)}::jsonb, 'pending', 0, now() - interval '10 minutes', null, null, null, null, null, 0, null),
          (${ixId(2)}, 'v1', 'r2', ${requestJson(2)}::jsonb, 'running', 1, now() - interval '9 minutes', now() - interval '30 seconds', null, null, null, null, 0, null),
          (${ixId(3)}, 'v1', 'r3', ${requestJson(3)}::jsonb, 'running', 0, now() - interval '2 hours', now() - interval '1 hour', null, null, null, null, 0, null),
          (${ixId(4)}, 'v1', 'r4', ${requestJson(4)}::jsonb, 'done', 0, now() - interval '8 minutes', now() - interval '8 minutes', now() - interval '7 minutes',
           ${responseJson(4, null)}::jsonb, 'https://hooks.example/a', 'delivered', 1, null),
          (${ixId(5)}, 'v1', 'r5', ${requestJson(5)}::jsonb, 'error', 2, now() - interval '6 minutes', now() - interval '6 minutes', now() - interval '5 minutes',
           ${responseJson(5, "boom")}::jsonb, 'https://hooks.example/b', null, 0, now() - interval '5 minutes')`);
      const before = await db.execute<{ request_id: string; status: string; attempts: number; created: string }>(
        sql`select request_id, status, attempts, created_at::text as created from ix_jobs order by request_id`,
      );

      expect(await migrateUp(db)).toEqual(["0002_job_control", "0003_scheduling", "0004_failed_jobs", "0005_trace_context"]);
      const moved = await db.execute<{
        request_id: string;
        status: string;
        attempts: number;
        created: string;
        due_when_created: boolean;
        lease_after_start: string | null;
        priority: number;
        max_attempts: number | null;
        errors: unknown;
        cancel_requested_at: string | null;
      }>(sql`
        select request_id, status, attempts, created_at::text as created, run_at = created_at as due_when_created,
               (lease_expires_at - started_at)::text as lease_after_start, priority, max_attempts, errors, cancel_requested_at
        from ix_jobs order by request_id`);
      expect(moved.rows.map(({ request_id, status, attempts, created }) => ({ request_id, status, attempts, created }))).toEqual(before.rows);
      for (const row of moved.rows) {
        expect(row, row.request_id).toMatchObject({ due_when_created: true, priority: 0, max_attempts: null, errors: [], cancel_requested_at: null });
        expect(row.lease_after_start, row.request_id).toBe(row.status === "running" ? "00:02:00" : null);
      }
      // 0003 copies each use_case out of its request; the pending one takes the first turn in its queue.
      const queued = await db.execute<{ request_id: string; use_case: string; fair_tag: string }>(
        sql`select request_id, use_case, fair_tag::text from ix_jobs order by request_id`,
      );
      expect(queued.rows.map((r) => [r.request_id, r.use_case, r.fair_tag])).toEqual([
        ["r1", "extract_fields", "1"],
        ["r2", "extract_fields", "0"],
        ["r3", "extract_fields", "0"],
        ["r4", "extract_fields", "0"],
        ["r5", "extract_fields", "0"],
      ]);
      const ids = (await db.execute<{ job_id: string; request_id: string }>(sql`select job_id, request_id from ix_jobs`)).rows;
      const id = Object.fromEntries(ids.map((r) => [r.request_id, r.job_id])) as Record<string, string>;
      for (const { job_id } of ids) expect(await jobs.get(db, job_id), job_id).not.toBeNull(); // every row is a valid v2 Job

      // The v2 repo works on them: the pending one is claimed, the long-dead run is rescued and the live one completes.
      expect((await jobs.claimPending(db, { limit: 5 })).map((j) => j.request_id)).toEqual(["r1"]);
      expect(await jobs.rescueOrphans(db, { horizonSeconds: 600, maxAttempts: 3 })).toEqual({
        skipped: false,
        requeued: [id.r3],
        failed: [],
        cancelled: [],
      });
      const live = (await jobs.get(db, id.r2!))!;
      const response = JSON.parse(responseJson(2, null)) as Parameters<typeof jobs.completeMany>[1][number]["response"];
      expect(await jobs.completeMany(db, [{ jobId: live.job_id, attempts: 1, response }])).toEqual([live.job_id]);

      // Down again, with rows only v2 can hold: a cancelled job, a cancel waiting for its worker, a job due later.
      const { job: cancelledJob } = await jobs.insertPending(db, { request: request({ ix_client_id: "v2" }) });
      expect((await jobs.cancel(db, { jobId: cancelledJob.job_id, by: "client" })).outcome).toBe("cancelled");
      const stopping = (await jobs.claimPending(db, { limit: 1 }))[0]!; // r3, requeued above
      expect((await jobs.cancel(db, { jobId: stopping.job_id, by: "operator" })).outcome).toBe("requested");
      const { job: later } = await jobs.insertPending(db, {
        request: request({ ix_client_id: "v2" }),
        runAt: new Date(Date.now() + 86_400_000),
        priority: 5,
        maxAttempts: 4,
      });

      expect(await migrateDown(db, { steps: 4 })).toEqual(["0005_trace_context", "0004_failed_jobs", "0003_scheduling", "0002_job_control"]);
      expect(await shapeNow()).toEqual(v1Shape);
      const after = await db.execute<{ job_id: string; status: string; error: string | null }>(
        sql`select job_id, status, response->>'error' as error from ix_jobs`,
      );
      const byId = new Map(after.rows.map((r) => [r.job_id, r]));
      expect(byId.get(cancelledJob.job_id)).toMatchObject({ status: "error", error: "cancelled by its client before it ran" });
      expect(byId.get(stopping.job_id)?.status).toBe("running");
      expect(byId.get(later.job_id)?.status).toBe("pending");
      // v1's constraints are back: no `cancelled` row can be written.
      const refused = await db.execute(sql`update ix_jobs set status = 'cancelled' where job_id = ${cancelledJob.job_id}`).catch((e: unknown) => e);
      expect(sqlState(refused)).toBe("23514");

      // And up once more: every row is a valid Job again.
      expect(await migrateUp(db)).toEqual(["0002_job_control", "0003_scheduling", "0004_failed_jobs", "0005_trace_context"]);
      for (const { job_id } of after.rows) expect(await jobs.get(db, job_id), job_id).not.toBeNull();
    } finally {
      await db.close();
      await empty.drop();
    }
  });

  test("two processes migrating at once apply each migration once", async () => {
    const empty = await createTestDatabase({ empty: true });
    const a = connect(empty.url, { max: 2 });
    const b = connect(empty.url, { max: 2 });
    try {
      const [fromA, fromB] = await Promise.all([migrateUp(a), migrateUp(b)]);
      expect([...fromA, ...fromB].sort()).toEqual(loadMigrations().map((m) => m.tag));
    } finally {
      await a.close();
      await b.close();
      await empty.drop();
    }
  });

  test("after up, drizzle-kit finds no difference between the schema and the database", async ({ database: { db } }) => {
    const { statementsToExecute } = await pushSchema(schema, db as never, ["public"], ["ix_jobs", "ix_callback_hosts", "ix_workers"]);
    expect(statementsToExecute).toEqual([]);
  });

  test("status notices an applied migration that was edited afterwards", async ({ database: { db } }) => {
    const edited = loadMigrations().map((m, i) => (i === 0 ? { ...m, hash: "edited" } : m));
    const status = await migrationStatus(db, edited);
    expect(status.modified).toEqual([edited[0]!.tag]);
    expect(status.current).toBe(false);
  });
});
