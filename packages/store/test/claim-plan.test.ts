import { describe, expect } from "vitest";
import { jobs, sql } from "../src";
import { test } from "./fixtures";

describe("the claim statement", () => {
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
