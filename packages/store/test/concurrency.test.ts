import { describe, expect } from "vitest";
import { jobs, sql } from "../src";
import { request, test } from "./fixtures";

// Every claim here runs on its own pooled connection at the same time as the
// others: these are real concurrent transactions, not interleaved promises on one socket.

describe("concurrent inserts", () => {
  test("50 concurrent inserts of one key from separate connections → one row, one job_id", async ({ database }) => {
    const pool = database.connect({ max: 50 });
    const req = request();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        jobs.insertPending(pool, { request: req, callbackUrl: `https://hooks.example/${i}` }),
      ),
    );
    const ids = new Set(results.map((r) => r.job.job_id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.created).length).toBe(1);
    const winner = results.find((r) => r.created)!;
    for (const r of results) expect(r.job).toEqual(winner.job);
    const count = await database.db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs`);
    expect(count.rows[0]?.n).toBe(1);
    const backends = await database.db.execute<{ n: number }>(
      sql`select count(*)::int as n from pg_stat_activity where datname = current_database()`,
    );
    // Proof the inserts were spread over many connections, not one.
    expect(backends.rows[0]?.n).toBeGreaterThan(10);
  });
});

describe("SKIP LOCKED", () => {
  test("a transaction holding a claimed row does not block a sibling claimer", async ({ database: { db } }) => {
    const first = (await jobs.insertPending(db, { request: request() })).job;
    const second = (await jobs.insertPending(db, { request: request() })).job;
    await db.transaction(async (tx) => {
      const held = await jobs.claimPending(tx, { limit: 1 });
      expect(held.map((j) => j.job_id)).toEqual([first.job_id]);
      // The sibling runs on another connection while this transaction still holds
      // the row lock. If it waited on the lock this statement would hit its timeout.
      const sibling = await db.transaction(async (other) => {
        await other.execute(sql`set local lock_timeout = '5s'`);
        return jobs.claimPending(other, { limit: 10 });
      });
      expect(sibling.map((j) => j.job_id)).toEqual([second.job_id]);
    });
  });

  test("16 concurrent claimers over 1,000 rows claim every row exactly once", async ({ database }) => {
    const { db } = database;
    await db.execute(sql`
      insert into ix_jobs (ix_id, client_id, request_id, use_case, fair_tag, request)
      select lpad(to_hex(g), 16, '0'), 'load', 'r' || g, 'noop', g,
             jsonb_build_object('use_case', 'noop', 'ix_client_id', 'load', 'request_id', 'r' || g,
                                'ix_id', lpad(to_hex(g), 16, '0'), 'context', jsonb_build_object('texts', jsonb_build_array('x')),
                                'options', '{}'::jsonb)
      from generate_series(1, 1000) as g`);
    const pool = database.connect({ max: 16 });
    const claims = await Promise.all(
      Array.from({ length: 16 }, async (_, worker) => {
        const mine: string[] = [];
        for (;;) {
          // Mix single and batch claims, as real workers do.
          const got = await jobs.claimPending(pool, { limit: worker % 2 === 0 ? 7 : 1 });
          if (got.length === 0) return mine;
          mine.push(...got.map((j) => j.job_id));
        }
      }),
    );
    const all = claims.flat();
    console.log(
      `[concurrency] 16 claimers: ${all.length} claims, ${new Set(all).size} distinct rows, per claimer ${claims.map((c) => c.length).join("/")}`,
    );
    expect(all.length).toBe(1000);
    expect(new Set(all).size).toBe(1000);
    // More than one claimer made progress: the claims really interleaved.
    expect(claims.filter((c) => c.length > 0).length).toBeGreaterThan(1);
    const states = await db.execute<{ status: string; n: number }>(
      sql`select status, count(*)::int as n from ix_jobs group by status`,
    );
    expect(states.rows).toEqual([{ status: "running", n: 1000 }]);
  });
});
