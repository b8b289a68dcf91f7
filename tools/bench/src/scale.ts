import { connect, type Database, jobs, migrateUp, sql } from "@ix/store";
import { percentile } from "./stats.ts";

export interface ScaleResult {
  terminal_rows: number;
  /** The routed claim a worker runs (its use_cases named, no cap). */
  claim_p50_ms: number;
  claim_p99_ms: number;
  /** The same claim with a concurrency cap on the use_case: an advisory lock and a count of its running jobs first. */
  capped_claim_p50_ms: number;
  capped_claim_p99_ms: number;
}

const USE_CASE = "bench_noop";
/** Timed claims per variant and size. */
const CLAIMS = 1_000;
/** The capped variant's cap: each claimed job is finished before the next claim, so it never refuses. */
const CAP = 8;
const ROUTED = { limit: 1, useCases: [USE_CASE] };
const CAPPED = { ...ROUTED, useCaseConcurrency: { [USE_CASE]: CAP } };
const REQUEST = sql`'{"use_case":"bench_noop","ix_client_id":"scale","request_id":"s","context":{"texts":["bench"]},"options":{}}'::jsonb`;
const RESPONSE = sql`'{"use_case":"bench_noop","ix_client_id":"scale","request_id":"s","ix_id":"0000000000000000","error":null,"result":{},"metadata":{"pipeline":"bench_noop","started_at":"2025-01-01T00:00:00.000Z","finished_at":"2025-01-01T00:00:00.000Z","duration_ms":0,"attempt":1}}'::jsonb`;

/**
 * Claim latency as the table fills with finished jobs (BENCHMARKS.md, Method: scale): for
 * each size, terminal rows are added in one `insert … select generate_series`,
 * the table is vacuumed and analysed, 2,000 pending jobs of one client are
 * added (turns in submission order), and they are claimed one at a time with
 * `jobs.claimPending` (the worker's call), routed to the use_case, alternately
 * without and with a cap on it; each claim is timed alone, and its job is then
 * finished (untimed), so the cap always has room and the claimed jobs count as
 * terminal rows for the next size. Returns the timings and the EXPLAIN
 * (ANALYZE, BUFFERS) of the capped claim at the largest size, which shows the
 * claim index doing the work.
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
          insert into ix_jobs (ix_id, client_id, request_id, use_case, status, request, response, created_at, started_at, finished_at)
          select lpad(to_hex(g), 16, '0'), 'scale', 't' || g, ${USE_CASE}, 'done', ${REQUEST}, ${RESPONSE},
                 now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
          from generate_series(${next}::int, ${next + add - 1}::int) as g`);
        next += add;
        terminal = size;
        log(`scale: ${size} terminal rows in place (${Math.round(performance.now() - started)} ms)`);
      }
      await db.execute(sql`vacuum analyze ix_jobs`);
      await db.execute(sql`
        insert into ix_jobs (ix_id, client_id, request_id, use_case, fair_tag, request)
        select lpad(to_hex(g), 16, '0'), 'scale', 'p' || g, ${USE_CASE}, g, ${REQUEST}
        from generate_series(${next}::int, ${next + 2 * CLAIMS - 1}::int) as g`);
      next += 2 * CLAIMS;
      explain = await explainCappedClaim(db);
      const routed: number[] = [];
      const capped: number[] = [];
      for (let i = 0; i < 2 * CLAIMS; i++) {
        const params = i % 2 === 0 ? ROUTED : CAPPED;
        const started = performance.now();
        const claimed = await jobs.claimPending(db, params);
        (i % 2 === 0 ? routed : capped).push(performance.now() - started);
        const [job] = claimed;
        if (!job || claimed.length !== 1) throw new Error(`scale: claim ${i + 1} of ${2 * CLAIMS} found no pending job`);
        await db.execute(sql`
          update ix_jobs set status = 'done', response = ${RESPONSE}, finished_at = now(), lease_expires_at = null where job_id = ${job.job_id}`);
      }
      terminal += 2 * CLAIMS;
      results.push({
        terminal_rows: size,
        claim_p50_ms: percentile(routed, 50),
        claim_p99_ms: percentile(routed, 99),
        capped_claim_p50_ms: percentile(capped, 50),
        capped_claim_p99_ms: percentile(capped, 99),
      });
    }
    return { results, explain };
  } finally {
    await db.close();
  }
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of the claim statement the repo runs for a capped
 * use_case (`jobs.claimPending` takes the use_case's advisory lock before it;
 * the lock is left out, it does not change the plan), rolled back so it claims nothing.
 */
async function explainCappedClaim(db: Database): Promise<string> {
  const { sql: text, params } = jobs.claimPendingStatement(db, CAPPED).toSQL();
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
