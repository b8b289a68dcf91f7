import { describe, expect } from "vitest";
import { jobs, sql } from "../src";
import { test } from "../src/testing";
import { request } from "./fixtures";

describe("claimPending with synchronousCommit: false", () => {
  test("claims like the durable claim, turns synchronous_commit off for that transaction only", async ({ database }) => {
    // One connection, so the setting would be visible afterwards if it leaked into the session.
    const db = database.connect({ max: 1 });
    for (let i = 0; i < 3; i++) await jobs.insertPending(db, { request: request({ request_id: `c${i}` }) });

    const claimed = await jobs.claimPending(db, { limit: 2, synchronousCommit: false });
    expect(claimed.map((j) => j.request_id)).toEqual(["c0", "c1"]);
    expect(claimed.every((j) => j.status === "running" && j.started_at !== null)).toBe(true);
    const after = await db.execute<{ setting: string }>(sql`select current_setting('synchronous_commit') as setting`);
    expect(after.rows[0]?.setting).toBe("on");

    // Inside a transaction the setting is visible until commit: proof it applies to the claim's own commit.
    const inside = await db.transaction(async (tx) => {
      const [job] = await jobs.claimPending(tx, { limit: 1, synchronousCommit: false });
      const { rows } = await tx.execute<{ setting: string }>(sql`select current_setting('synchronous_commit') as setting`);
      return { job, setting: rows[0]?.setting };
    });
    expect(inside).toMatchObject({ job: { request_id: "c2" }, setting: "off" });
    expect(await jobs.claimPending(db, { limit: 5, synchronousCommit: false })).toEqual([]);
  });

  test("the claim statement fetches the locked rows by primary key, not by scanning the table", async ({ database: { db } }) => {
    // Enough rows that a whole-table scan is a real cost: `in (subquery)` hash-joined against one here.
    await db.execute(sql`
      insert into ix_jobs (ix_id, client_id, request_id, request)
      select lpad(to_hex(g), 16, '0'), 'scan', 'r' || g, '{}'::jsonb from generate_series(1, 20000) as g`);
    await db.execute(sql`analyze ix_jobs`);
    const { sql: text, params } = jobs.claimPendingStatement(db, { limit: 500 }).toSQL();
    const { rows } = await db.$client.query<{ "QUERY PLAN": string }>(`explain ${text}`, params);
    const plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
    expect(plan).toContain("ix_jobs_pending_idx");
    expect(plan).toContain("ix_jobs_pkey");
    expect(plan).not.toMatch(/Seq Scan/);
  });
});
