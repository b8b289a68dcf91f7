import { connect, jobs, migrateUp, sql } from "@ix/store";
import { percentile } from "./stats.ts";

export interface ScaleResult {
  terminal_rows: number;
  claim_p50_ms: number;
  claim_p99_ms: number;
}

const CLAIMS = 1_000;
const REQUEST = sql`'{"use_case":"bench_noop","ix_client_id":"scale","request_id":"s","context":{"texts":["bench"]},"options":{}}'::jsonb`;
const RESPONSE = sql`'{"use_case":"bench_noop","ix_client_id":"scale","request_id":"s","ix_id":"0000000000000000","error":null,"result":{},"metadata":{"pipeline":"bench_noop","started_at":"2025-01-01T00:00:00.000Z","finished_at":"2025-01-01T00:00:00.000Z","duration_ms":0,"attempt":1}}'::jsonb`;

/**
 * Claim latency as the table fills with finished jobs (BENCHMARKS.md, Method: scale): for
 * each size, terminal rows are added in one `insert … select generate_series`,
 * the table is vacuumed and analysed, 1,000 pending jobs are added, and each is
 * claimed alone with `jobs.claimPending` (the worker's statement), timed one
 * by one. The claimed jobs then count as terminal rows for the next size.
 * Returns the timings and the EXPLAIN (ANALYZE, BUFFERS) of the claim at the
 * largest size, which shows the partial index doing the work.
 */
export async function measureScale(url: string, sizes: readonly number[], log: (message: string) => void): Promise<{ results: ScaleResult[]; explain: string }> {
  const db = connect(url, { max: 2, applicationName: "ix-bench-scale" });
  try {
    await migrateUp(db);
    const results: ScaleResult[] = [];
    let explain = "";
    let terminal = 0;
    let next = 1;
    for (const size of [...sizes].sort((a, b) => a - b)) {
      if (size > terminal) {
        const started = performance.now();
        const add = size - terminal;
        await db.execute(sql`
          insert into ix_jobs (ix_id, client_id, request_id, status, request, response, created_at, started_at, finished_at)
          select lpad(to_hex(g), 16, '0'), 'scale', 't' || g, 'done', ${REQUEST}, ${RESPONSE},
                 now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
          from generate_series(${next}::int, ${next + add - 1}::int) as g`);
        next += add;
        terminal = size;
        log(`scale: ${size} terminal rows in place (${Math.round(performance.now() - started)} ms)`);
      }
      await db.execute(sql`vacuum analyze ix_jobs`);
      await db.execute(sql`
        insert into ix_jobs (ix_id, client_id, request_id, request)
        select lpad(to_hex(g), 16, '0'), 'scale', 'p' || g, ${REQUEST}
        from generate_series(${next}::int, ${next + CLAIMS - 1}::int) as g`);
      next += CLAIMS;
      explain = await explainClaim(db);
      const samples: number[] = [];
      for (let i = 0; i < CLAIMS; i++) {
        const started = performance.now();
        const claimed = await jobs.claimPending(db, { limit: 1 });
        samples.push(performance.now() - started);
        if (claimed.length !== 1) throw new Error(`scale: claim ${i + 1} of ${CLAIMS} found no pending job`);
      }
      // The claimed jobs finish, so the next size counts them as terminal rows.
      await db.execute(sql`
        update ix_jobs set status = 'done', response = ${RESPONSE}, finished_at = now(), lease_expires_at = null where status = 'running'`);
      terminal += CLAIMS;
      results.push({ terminal_rows: size, claim_p50_ms: percentile(samples, 50), claim_p99_ms: percentile(samples, 99) });
    }
    return { results, explain };
  } finally {
    await db.close();
  }
}

/** EXPLAIN (ANALYZE, BUFFERS) of the claim statement the repo runs, rolled back so it claims nothing. */
async function explainClaim(db: ReturnType<typeof connect>): Promise<string> {
  const { sql: text, params } = jobs.claimPendingStatement(db, { limit: 1 }).toSQL();
  const client = await db.$client.connect();
  try {
    await client.query("begin");
    const { rows } = await client.query<{ "QUERY PLAN": string }>(`explain (analyze, buffers) ${text}`, params);
    return rows.map((r) => r["QUERY PLAN"]).join("\n");
  } finally {
    await client.query("rollback");
    client.release();
  }
}
