import { pushSchema } from "drizzle-kit/api";
import { describe, expect } from "vitest";
import { connect, jobs, loadMigrations, migrateDown, migrateUp, migrationStatus, sql } from "../src";
import * as schema from "../src/schema";
import { createTestDatabase, request, sqlState, test } from "./fixtures";

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

  test("reject a second row for the same (client_id, request_id) even without ON CONFLICT", async ({ database: { db } }) => {
    const insert = (ixId: string) =>
      db.execute(sql`insert into ix_jobs (ix_id, client_id, request_id, request)
                     values (${ixId}, 'c', 'same', ${validRequest("same")}::jsonb)`);
    await insert("0000000000000001");
    expect(sqlState(await insert("0000000000000002").catch((e: unknown) => e))).toBe("23505");
  });
});

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
    const { statementsToExecute } = await pushSchema(schema, db as never, ["public"], ["ix_jobs", "ix_callback_hosts"]);
    expect(statementsToExecute).toEqual([]);
  });

  test("status notices an applied migration that was edited afterwards", async ({ database: { db } }) => {
    const edited = loadMigrations().map((m, i) => (i === 0 ? { ...m, hash: "edited" } : m));
    const status = await migrationStatus(db, edited);
    expect(status.modified).toEqual([edited[0]!.tag]);
    expect(status.current).toBe(false);
  });
});
