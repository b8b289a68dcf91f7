import { describe, expect } from "vitest";
import { jobs, sql } from "../src/index.ts";
import { test } from "./fixtures.ts";

type ClaimParams = Parameters<typeof jobs.claimPendingStatement>[1];

describe("the claim statement", () => {
  // Enough rows that a whole-table scan is a real cost: `in (subquery)` hash-joined against one here.
  // Two use_cases, 200 clients, three priorities, turns and due times spread, and finished rows beside them.
  const fill = sql`
    insert into ix_jobs (ix_id, client_id, request_id, request, use_case, priority, fair_tag, run_at, status, started_at, finished_at, response)
    select lpad(to_hex(g), 16, '0'), 'c' || (g % 200), 'r' || g, '{}'::jsonb,
           case when g % 3 = 0 then 'ocr' else 'llm' end, (g % 3) * 10 - 10,
           case when g % 7 = 0 and g % 2 = 1 then null else g / 200 end,
           now() + (case when g % 7 = 0 then interval '1 hour' else interval '0' end),
           case when g % 2 = 0 then 'done' else 'pending' end,
           case when g % 2 = 0 then now() end, case when g % 2 = 0 then now() end, case when g % 2 = 0 then '{}'::jsonb end
    from generate_series(1, 40000) as g`;

  /** Each queue read from the claim index in claim order (not fetched whole and sorted), rows fetched by primary key, no table scan. */
  function expectIndexedClaim(text: string, params: ClaimParams): void {
    expect(text, JSON.stringify(params)).toContain("ix_jobs_claim_idx");
    expect(text, JSON.stringify(params)).toContain("ix_jobs_pkey");
    expect(text, JSON.stringify(params)).not.toMatch(/Seq Scan/);
    expect(text, JSON.stringify(params)).toMatch(/LockRows[^\n]*\n\s*->\s+Index Scan using ix_jobs_claim_idx/);
  }

  function literal(value: unknown): string {
    if (value === null || value === undefined) return "null";
    if (typeof value === "number") return String(value);
    const text = Array.isArray(value) ? `{${value.map((v) => JSON.stringify(v)).join(",")}}` : String(value);
    return `'${text.replaceAll("'", "''")}'`;
  }

  async function plan(db: Parameters<typeof jobs.claimPendingStatement>[0], params: ClaimParams): Promise<string> {
    const { sql: text, params: values } = jobs.claimPendingStatement(db, params).toSQL();
    const { rows } = await (db as { $client: { query: <R>(t: string, v: unknown[]) => Promise<{ rows: R[] }> } }).$client.query<{
      "QUERY PLAN": string;
    }>(`explain ${text}`, values);
    return rows.map((r) => r["QUERY PLAN"]).join("\n");
  }

  test("with routing, priority, turns, run_at and a cap, the claim reads the claim index and fetches rows by primary key", async ({
    database: { db },
  }) => {
    await db.execute(fill);
    await db.execute(sql`analyze ix_jobs`);
    for (const params of [
      { limit: 500, useCases: ["ocr", "llm"], useCaseConcurrency: { ocr: 4 } },
      { limit: 8, useCases: ["llm"] },
      { limit: 8 }, // every use_case: found by skipping through the index
    ] satisfies ClaimParams[]) {
      const text = await plan(db, params);
      expectIndexedClaim(text, params);
      expect(text, JSON.stringify(params)).toContain("ix_jobs_scheduled_idx");
      expect(text, JSON.stringify(params)).not.toMatch(/Sort Key: \w+\.priority DESC, \w+\.fair_tag/);
      if (params.useCaseConcurrency) expect(text).toContain("ix_jobs_running_queue_idx");
    }
  });

  // The claim runs as a prepared statement: after a few executions PostgreSQL may switch to a plan built
  // without the parameters' values, which must be just as good.
  test("the plan built without the parameters' values (the prepared statement's generic plan) is the same shape", async ({
    database: { db },
  }) => {
    await db.execute(fill);
    await db.execute(sql`analyze ix_jobs`);
    for (const params of [
      { limit: 500, useCases: ["ocr", "llm"], useCaseConcurrency: { ocr: 4 } },
      { limit: 1, useCases: ["llm"] },
      { limit: 8 },
    ] satisfies ClaimParams[]) {
      const { sql: text, params: values } = jobs.claimPendingStatement(db, params).toSQL();
      const text2 = await db.transaction(async (tx) => {
        await tx.execute(sql`set local plan_cache_mode = force_generic_plan`);
        await tx.execute(sql.raw(`prepare ix_claim_generic as ${text}`));
        // EXPLAIN EXECUTE takes no bind parameters: the values go in as literals.
        const { rows } = await tx.execute<{ "QUERY PLAN": string }>(sql.raw(`explain execute ix_claim_generic(${values.map(literal).join(", ")})`));
        await tx.execute(sql`deallocate ix_claim_generic`);
        return rows.map((r) => r["QUERY PLAN"]).join("\n");
      });
      expectIndexedClaim(text2, params);
    }
  });
});
