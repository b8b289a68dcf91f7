/**
 * What one job's lifecycle costs the database, statement by statement: N jobs
 * submitted through `jobs.insertPendingMany` in batches, then claimed and
 * completed in batches through `jobs.claimPendingRuns` and `jobs.completeRuns`,
 * the worker's own store calls, with nothing else running. For each step: WAL
 * bytes and records per job, this database's own (pg_walinspect) and milliseconds per batch.
 * BENCHMARKS.md, "Issue 17 levers".
 *
 *   IX_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx --conditions=source tools/bench/src/lifecycle-cost.ts
 */
import { randomBytes } from "node:crypto";
import type { RequestIX } from "@ix/contracts";
import { connect, type Database, jobs, migrateUp, sql, sqlState } from "@ix/store";
import { runResponse } from "@ix/testing/runs";
import { adminQuery, databaseUrl, quoteIdent } from "@ix/testing/admin";
import { Command } from "commander";
import { processCpuUs } from "./cpu.ts";

const USE_CASE = "bench_noop";

/** WAL written for this database's relations (and the commits of those transactions), by record kind. */
interface WalKind {
  kind: string;
  records: number;
  bytes: number;
}

/**
 * Reads the WAL between two LSNs with pg_walinspect and keeps only the records
 * of this database's relations and their transactions' commits, so other
 * databases' activity on the server does not count.
 */
async function walOf(db: Database, from: string, to: string): Promise<WalKind[]> {
  const result = await db.execute<{ kind: string; records: string; bytes: string }>(sql`
    with r as (select * from pg_get_wal_records_info(${from}::pg_lsn, ${to}::pg_lsn)),
    mine as (
      select * from r where r.block_ref like '%rel ' || (select dattablespace from pg_database where datname = current_database()) || '/'
                                                   || (select oid from pg_database where datname = current_database()) || '/%')
    select resource_manager || ' ' || split_part(record_type, ' ', 1) as kind, count(*)::text as records, sum(record_length)::text as bytes
    from (select * from mine union all
          select * from r where r.resource_manager = 'Transaction' and r.xid in (select xid from mine where xid <> 0)) as kept
    group by 1 order by sum(record_length) desc`);
  return result.rows.map((row) => ({ kind: row.kind, records: Number(row.records), bytes: Number(row.bytes) }));
}

async function currentLsn(db: Database): Promise<string> {
  const result = await db.execute<{ lsn: string }>(sql`select pg_current_wal_flush_lsn()::text as lsn`);
  return result.rows[0]?.lsn ?? "0/0";
}

export interface StepCost {
  step: string;
  jobs: number;
  /** null: the server recycled the step's WAL before it could be read. */
  wal_bytes_per_job: number | null;
  wal_records_per_job: number | null;
  ms_per_batch: number;
  jobs_per_s: number;
  /** The server's CPU for the step (the one backend's, from /proc); null when the server is not on this host. */
  postgres_cpu_us_per_job: number | null;
  /** This process's CPU for the step: building statements, encoding parameters, decoding and validating rows. */
  node_cpu_us_per_job: number;
  /** Records and bytes per job by resource manager and record type. */
  wal_by_kind: Record<string, { records_per_job: number; bytes_per_job: number }>;
}

async function measure(db: Database, step: string, n: number, batches: number, body: () => Promise<void>): Promise<StepCost> {
  const before = await currentLsn(db);
  const backend = Number((await db.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`)).rows[0]?.pid);
  const backendBefore = await processCpuUs(backend);
  const nodeBefore = process.cpuUsage();
  const started = performance.now();
  await body();
  const ms = performance.now() - started;
  const node = process.cpuUsage(nodeBefore);
  const backendAfter = await processCpuUs(backend);
  // The server may have recycled the step's WAL already (a checkpoint after other heavy writes): then no WAL figures.
  const kinds = await walOf(db, before, await currentLsn(db)).catch((error: unknown) => {
    if (sqlState(error) === "58P01") return null;
    throw error;
  });
  const per = (value: number) => Number((value / n).toFixed(2));
  return {
    step,
    jobs: n,
    wal_bytes_per_job: kinds && Math.round(kinds.reduce((sum, k) => sum + k.bytes, 0) / n),
    wal_records_per_job: kinds && per(kinds.reduce((sum, k) => sum + k.records, 0)),
    ms_per_batch: Number((ms / batches).toFixed(2)),
    jobs_per_s: Math.round((n / ms) * 1000),
    postgres_cpu_us_per_job: backendBefore === null || backendAfter === null ? null : Math.round((backendAfter - backendBefore) / n),
    node_cpu_us_per_job: Math.round((node.user + node.system) / n),
    wal_by_kind: Object.fromEntries((kinds ?? []).map((k) => [k.kind, { records_per_job: per(k.records), bytes_per_job: Math.round(k.bytes / n) }])),
  };
}

function request(clientId: string, requestId: string): RequestIX {
  return { use_case: USE_CASE, ix_client_id: clientId, request_id: requestId, context: { texts: ["bench"] }, options: {} };
}

export interface LifecycleCostOptions {
  n: number;
  batch: number;
  /** SQL run after the migrations, before the first job: a physical-design lever under test (e.g. a fillfactor). */
  setupSql?: string;
}

export async function lifecycleCost(serverUrl: string, { n, batch, setupSql }: LifecycleCostOptions): Promise<StepCost[]> {
  const name = `ix_bench_lifecycle_${randomBytes(4).toString("hex")}`;
  await adminQuery(serverUrl, `create database ${quoteIdent(name)}`);
  const db = connect(databaseUrl(serverUrl, name), { max: 1, applicationName: "ix-bench-lifecycle" });
  try {
    await migrateUp(db);
    await db.execute(sql`create extension if not exists pg_walinspect`);
    if (setupSql) await db.execute(sql.raw(setupSql));
    const batches = Math.ceil(n / batch);
    const costs: StepCost[] = [];
    costs.push(
      await measure(db, "submit (insertPendingMany)", n, batches, async () => {
        for (let b = 0; b < batches; b++) {
          const size = Math.min(batch, n - b * batch);
          await jobs.insertPendingMany(
            db,
            Array.from({ length: size }, (_, i) => ({ request: request(`c${i % 8}`, `r${b * batch + i}`) })),
          );
        }
      }),
    );
    const claimed: Awaited<ReturnType<typeof jobs.claimPendingRuns>>[] = [];
    costs.push(
      await measure(db, "claim (claimPendingRuns)", n, batches, async () => {
        for (;;) {
          const runs = await jobs.claimPendingRuns(db, { limit: batch, useCases: [USE_CASE] });
          if (runs.length === 0) break;
          claimed.push(runs);
        }
      }),
    );
    const claimedCount = claimed.reduce((sum, runs) => sum + runs.length, 0);
    if (claimedCount !== n) throw new Error(`claimed ${claimedCount} of ${n} jobs`);
    costs.push(
      await measure(db, "complete (completeRuns)", n, claimed.length, async () => {
        for (const runs of claimed) {
          const done = await jobs.completeRuns(
            db,
            runs.map(({ job }) => ({ jobId: job.job_id, attempts: job.attempts, response: runResponse(job) })),
          );
          if (done.length !== runs.length) throw new Error(`completed ${done.length} of ${runs.length}`);
        }
      }),
    );
    return costs;
  } finally {
    await db.close();
    await adminQuery(serverUrl, `drop database if exists ${quoteIdent(name)} with (force)`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const program = new Command()
    .name("lifecycle-cost")
    .description("WAL and time per job of submit, claim and complete, batch by batch")
    .option("--database-url <url>", "PostgreSQL server (default IX_POSTGRES_URL)", process.env.IX_POSTGRES_URL)
    .option("--n <jobs>", "jobs", (v) => Number.parseInt(v, 10), 20_000)
    .option("--batch <size>", "jobs per statement", (v) => Number.parseInt(v, 10), 500)
    .option("--setup-sql <sql>", "SQL run after the migrations: the lever under test")
    .parse();
  const { databaseUrl: url, n, batch, setupSql } = program.opts<{ databaseUrl?: string; n: number; batch: number; setupSql?: string }>();
  if (!url) {
    console.error("lifecycle-cost: give --database-url or IX_POSTGRES_URL");
    process.exit(2);
  }
  for (const cost of await lifecycleCost(url, { n, batch, setupSql })) console.log(JSON.stringify(cost));
}
